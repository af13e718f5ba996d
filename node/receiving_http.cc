#include "node/receiving_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/purchasing.h"
#include "common/request_context.h"
#include "node/http_route.h"

namespace depot::node {

bool HandleReceivingHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/putaway" && p != "/v1/purchase-orders" && !p.starts_with("/v1/purchase-orders/")) {
    return false;
  }
  RouteHelper r(req, respond, registry);

  if (p == "/v1/putaway") {
    r.Measure(p);
    if (m != "GET") return r.NotAllowed();
    const std::string sku = req.Query("sku").value_or("");
    if (sku.empty()) return r.Bad("sku is required: /v1/putaway?sku=SKU[&lot=LOT][&quantity=N]");
    if (auto q = req.Query("quantity"); q && !q->empty()) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*q, &n) || n <= 0) {
        return r.Bad(absl::StrCat("quantity '", *q, "' must be a positive number"));
      }
    }
    http::Reply(ledger->SuggestPutaway(sku, req.Query("lot").value_or("")), respond);
    return true;
  }
  if (p == "/v1/purchase-orders") {
    r.Measure(p);
    if (m != "GET") return r.NotAllowed();
    v1::PurchaseOrderStatus status;
    const std::string text = req.Query("status").value_or("");
    if (!purchasing::ParseStatus(text, &status)) {
      return r.Bad(absl::StrCat("status '", text,
                                "' is not a PO status (open, partially_received, received, "
                                "closed_short, cancelled)"));
    }
    uint32_t limit = 1000;
    if (!r.Limit(&limit)) return true;
    http::Reply(ledger->ListPurchaseOrders(status, limit), respond);
    return true;
  }
  std::string id, action;
  r.IdAndAction("/v1/purchase-orders/", &id, &action);
  if (id.empty() || (!action.empty() && action != "receive")) return r.NoRoute();
  if (action.empty()) {
    r.Measure("/v1/purchase-orders/{id}");
    if (m != "GET") return r.NotAllowed();
    http::Reply(ledger->GetPurchaseOrder(id), respond);
    return true;
  }
  r.Measure("/v1/purchase-orders/{id}/receive");
  if (m != "POST") return r.NotAllowed();
  v1::Operation op;
  if (!r.Parse(op.mutable_po_receive())) return true;
  op.mutable_po_receive()->set_po_id(id);  // the path names the PO
  return r.Write(committer, client, std::move(op),
                 [](const v1::OperationResult& res) -> const google::protobuf::Message& {
                   return res.po_receipt();
                 });
}

}  // namespace depot::node
