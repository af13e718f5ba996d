#include "node/receiving_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/purchasing.h"
#include "common/request_context.h"

namespace depot::node {

bool HandleReceivingHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  if (p != "/v1/putaway" && p != "/v1/purchase-orders" && !p.starts_with("/v1/purchase-orders/")) {
    return false;
  }
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

  if (p == "/v1/putaway") {
    measured(p);
    if (m != "GET") return not_allowed();
    const std::string sku = req.Query("sku").value_or("");
    if (sku.empty()) return bad("sku is required: /v1/putaway?sku=SKU[&lot=LOT][&quantity=N]");
    if (auto q = req.Query("quantity"); q && !q->empty()) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(*q, &n) || n <= 0) {
        return bad(absl::StrCat("quantity '", *q, "' must be a positive number"));
      }
    }
    http::Reply(ledger->SuggestPutaway(sku, req.Query("lot").value_or("")), respond);
    return true;
  }
  if (p == "/v1/purchase-orders") {
    measured(p);
    if (m != "GET") return not_allowed();
    v1::PurchaseOrderStatus status;
    const std::string text = req.Query("status").value_or("");
    if (!purchasing::ParseStatus(text, &status)) {
      return bad(absl::StrCat("status '", text,
                              "' is not a PO status (open, partially_received, received, "
                              "closed_short, cancelled)"));
    }
    uint32_t limit = 1000;
    if (auto v = req.Query("limit"); v && !v->empty() && !absl::SimpleAtoi(*v, &limit)) {
      return bad(absl::StrCat("limit '", *v, "' is not a number"));
    }
    http::Reply(ledger->ListPurchaseOrders(status, limit), respond);
    return true;
  }
  std::string_view rest = std::string_view(p).substr(sizeof("/v1/purchase-orders/") - 1);
  std::string action;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    action = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
  }
  const std::string id = http::PercentDecode(rest);
  if (id.empty() || (!action.empty() && action != "receive")) {
    respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    return true;
  }
  if (action.empty()) {
    measured("/v1/purchase-orders/{id}");
    if (m != "GET") return not_allowed();
    http::Reply(ledger->GetPurchaseOrder(id), respond);
    return true;
  }
  measured("/v1/purchase-orders/{id}/receive");
  if (m != "POST") return not_allowed();
  auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
  if (!ctx.ok()) {
    respond(http::ErrorResponse(ctx.status()));
    return true;
  }
  v1::Operation op;
  v1::ReceivePoRequest* r = op.mutable_po_receive();
  if (auto s = JsonToMessage(req.body, r); !s.ok()) {
    respond(http::ErrorResponse(s));
    return true;
  }
  r->set_po_id(id);  // the path names the PO
  committer->Submit(std::move(*ctx), std::move(op),
                    [client, respond = std::move(respond)](absl::StatusOr<v1::OperationResult> res) {
                      if (!res.ok()) return respond(http::ErrorResponse(res.status()));
                      if (client != nullptr && !res->replayed()) client->Notify();
                      respond(http::JsonOk(res->po_receipt(), res->replayed() ? 200 : 201));
                    });
  return true;
}

}  // namespace depot::node
