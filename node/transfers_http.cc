#include "node/transfers_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/request_context.h"
#include "common/transfer_status.h"
#include "node/http_route.h"

namespace depot::node {


bool HandleTransfersHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/transfers" && !p.starts_with("/v1/transfers/")) return false;
  RouteHelper r(req, respond, registry);
  // Writes answer the transfer after the change.
  auto write = [&](v1::Operation op) {
    return r.Write(committer, client, std::move(op),
                   [](const v1::OperationResult& res) -> const google::protobuf::Message& {
                     return res.transfer();
                   });
  };

  if (p == "/v1/transfers") {
    r.Measure(p);
    if (m == "POST") {
      v1::Operation op;
      if (!r.Parse(op.mutable_transfer_create())) return true;
      return write(std::move(op));
    }
    if (m != "GET") return r.NotAllowed();
    v1::ListTransfersRequest q;
    v1::TransferStatus status;
    const std::string text = req.Query("status").value_or("");
    if (!::depot::transfers::ParseTransferStatus(text, &status)) {
      return r.Bad(absl::StrCat("status '", text,
                                "' is not a transfer status (requested, shipped or in_transit, "
                                "received, received_with_variance, cancelled)"));
    }
    q.set_status(status);
    q.set_site(req.Query("site").value_or(""));
    q.set_sku(req.Query("sku").value_or(""));
    uint32_t limit = 0;
    if (!r.Limit(&limit)) return true;
    q.set_limit(limit);
    http::Reply(ledger->ListTransfers(q), respond);
    return true;
  }
  std::string id, action;
  r.IdAndAction("/v1/transfers/", &id, &action);
  if (id.empty() || (!action.empty() && action != "ship" && action != "cancel" &&
                     action != "receive")) {
    return r.NoRoute();
  }
  if (action.empty()) {
    r.Measure("/v1/transfers/{id}");
    if (m != "GET") return r.NotAllowed();
    http::Reply(ledger->GetTransfer(id), respond);
    return true;
  }
  r.Measure(absl::StrCat("/v1/transfers/{id}/", action));
  if (m != "POST") return r.NotAllowed();
  v1::Operation op;
  if (action == "receive") {
    if (!r.Parse(op.mutable_transfer_receive())) return true;
    op.mutable_transfer_receive()->set_transfer_id(id);  // the path names the transfer
  } else {
    v1::ShipTransferRequest* ship = op.mutable_transfer_ship();
    if (!r.Parse(ship)) return true;
    ship->set_transfer_id(id);
    if (action == "cancel") ship->set_cancel(true);
  }
  return write(std::move(op));
}

}  // namespace depot::node
