#include "node/http_route.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"

namespace depot::node {

void RouteHelper::Measure(const std::string& route) {
  respond_ = http::Measured(registry_, route, std::move(respond_));
}

bool RouteHelper::NotAllowed() {
  respond_(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                               absl::StrCat(req_.method, " is not allowed on ", req_.path)));
  return true;
}

bool RouteHelper::NoRoute() {
  respond_(http::ErrorResponse(404, "NOT_FOUND",
                               absl::StrCat("no route for ", req_.method, " ", req_.path)));
  return true;
}

bool RouteHelper::Bad(std::string_view message) {
  return Error(absl::InvalidArgumentError(std::string(message)));
}

bool RouteHelper::Error(const absl::Status& status) {
  respond_(http::ErrorResponse(status));
  return true;
}

bool RouteHelper::Parse(google::protobuf::Message* msg) {
  if (req_.body.empty()) return true;
  if (auto s = JsonToMessage(req_.body, msg); !s.ok()) {
    Error(s);
    return false;
  }
  return true;
}

bool RouteHelper::Limit(uint32_t* limit) {
  auto v = req_.Query("limit");
  if (!v || v->empty()) return true;
  if (!absl::SimpleAtoi(*v, limit)) {
    Bad(absl::StrCat("limit '", *v, "' is not a number"));
    return false;
  }
  return true;
}

void RouteHelper::IdAndAction(std::string_view prefix, std::string* id,
                              std::string* action) const {
  std::string_view rest = std::string_view(req_.path).substr(prefix.size());
  action->clear();
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    *action = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
  }
  *id = http::PercentDecode(rest);
}

bool RouteHelper::Write(GroupCommitter* committer, SyncClient* client, v1::Operation op,
                        Answer answer) {
  auto ctx = ContextFromOperatorHeader(req_.Header(kOperatorHeader), req_.remote);
  if (!ctx.ok()) return Error(ctx.status());
  committer->Submit(std::move(*ctx), std::move(op),
                    [client, answer = std::move(answer), respond = std::move(respond_)](
                        absl::StatusOr<v1::OperationResult> res) {
                      if (!res.ok()) return respond(http::ErrorResponse(res.status()));
                      if (client != nullptr && !res->replayed()) client->Notify();
                      respond(http::JsonOk(answer(*res), res->replayed() ? 200 : 201));
                    });
  return true;
}

}  // namespace depot::node
