#include "node/returns_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"
#include "common/returns_rules.h"
#include "node/http_route.h"

namespace depot::node {

bool HandleReturnsHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                       metrics::Registry* registry, http::Request& req, http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/returns" && !p.starts_with("/v1/returns/")) return false;
  RouteHelper r(req, respond, registry);
  // A write: the body parsed into the operation member `member` returns, return_id from the path.
  auto write = [&](auto member, const std::string& id) {
    v1::Operation op;
    auto* msg = member(&op);
    if (!r.Parse(msg)) return true;
    if (!id.empty()) msg->set_return_id(id);
    return r.Write(committer, client, std::move(op),
                   [](const v1::OperationResult& res) -> const google::protobuf::Message& {
                     return res.ret();
                   });
  };

  if (p == "/v1/returns") {
    r.Measure(p);
    if (m == "POST") {
      return write(+[](v1::Operation* o) { return o->mutable_return_receive(); }, "");
    }
    if (m != "GET") return r.NotAllowed();
    v1::ReturnStatus status = v1::RETURN_STATUS_UNSPECIFIED;
    const std::string text = req.Query("status").value_or("");
    if (!text.empty() && !returns::ParseStatus(text, &status)) {
      return r.Bad(absl::StrCat("unknown return status '", text,
                                "' (authorised, received, disposed, refunded)"));
    }
    uint32_t limit = 100;
    if (!r.Limit(&limit)) return true;
    http::Reply(ledger->ListReturns(status, limit), respond);
    return true;
  }
  std::string id, action;
  r.IdAndAction("/v1/returns/", &id, &action);
  if (id.empty() || (!action.empty() && action != "disposition" && action != "refund")) {
    return r.NoRoute();
  }
  if (action.empty()) {
    r.Measure("/v1/returns/{id}");
    if (m != "GET") return r.NotAllowed();
    http::Reply(ledger->GetReturn(id), respond);
    return true;
  }
  r.Measure(absl::StrCat("/v1/returns/{id}/", action));
  if (m != "POST") return r.NotAllowed();
  if (action == "disposition") {
    return write(+[](v1::Operation* o) { return o->mutable_return_dispose(); }, id);
  }
  return write(+[](v1::Operation* o) { return o->mutable_return_refund(); }, id);
}

}  // namespace depot::node
