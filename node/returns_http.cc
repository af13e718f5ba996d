#include "node/returns_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"
#include "common/returns_rules.h"

namespace depot::node {

bool HandleReturnsHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                       metrics::Registry* registry, http::Request& req, http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/returns" && !p.starts_with("/v1/returns/")) return false;
  auto measured = [&](const std::string& route) {
    respond = http::Measured(registry, route, std::move(respond));
  };
  auto not_allowed = [&] {
    respond(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                                absl::StrCat(m, " is not allowed on ", p)));
    return true;
  };
  auto bad = [&](std::string message) {
    respond(http::ErrorResponse(absl::InvalidArgumentError(message)));
    return true;
  };
  // A write: the body parsed into the operation member `member` returns, return_id from the path.
  auto write = [&](auto member, const std::string& id) {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) {
      respond(http::ErrorResponse(ctx.status()));
      return true;
    }
    v1::Operation op;
    auto* msg = member(&op);
    if (auto s = JsonToMessage(req.body, msg); !s.ok()) {
      respond(http::ErrorResponse(s));
      return true;
    }
    if (!id.empty()) msg->set_return_id(id);
    committer->Submit(std::move(*ctx), std::move(op),
                      [client, respond = std::move(respond)](
                          absl::StatusOr<v1::OperationResult> res) {
                        if (!res.ok()) return respond(http::ErrorResponse(res.status()));
                        if (client != nullptr && !res->replayed()) client->Notify();
                        respond(http::JsonOk(res->ret(), res->replayed() ? 200 : 201));
                      });
    return true;
  };

  if (p == "/v1/returns") {
    measured(p);
    if (m == "POST") {
      return write(+[](v1::Operation* o) { return o->mutable_return_receive(); }, "");
    }
    if (m != "GET") return not_allowed();
    v1::ReturnStatus status = v1::RETURN_STATUS_UNSPECIFIED;
    const std::string text = req.Query("status").value_or("");
    if (!text.empty() && !returns::ParseStatus(text, &status)) {
      return bad(absl::StrCat("unknown return status '", text,
                              "' (authorised, received, disposed, refunded)"));
    }
    uint32_t limit = 100;
    if (auto v = req.Query("limit"); v && !v->empty() && !absl::SimpleAtoi(*v, &limit)) {
      return bad(absl::StrCat("limit '", *v, "' is not a number"));
    }
    http::Reply(ledger->ListReturns(status, limit), respond);
    return true;
  }
  std::string_view rest = std::string_view(p).substr(sizeof("/v1/returns/") - 1);
  std::string action;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    action = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
  }
  const std::string id = http::PercentDecode(rest);
  if (id.empty() || (!action.empty() && action != "disposition" && action != "refund")) {
    respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    return true;
  }
  if (action.empty()) {
    measured("/v1/returns/{id}");
    if (m != "GET") return not_allowed();
    http::Reply(ledger->GetReturn(id), respond);
    return true;
  }
  measured(absl::StrCat("/v1/returns/{id}/", action));
  if (m != "POST") return not_allowed();
  if (action == "disposition") {
    return write(+[](v1::Operation* o) { return o->mutable_return_dispose(); }, id);
  }
  return write(+[](v1::Operation* o) { return o->mutable_return_refund(); }, id);
}

}  // namespace depot::node
