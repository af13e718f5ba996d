#include "central/http_api.h"

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "central/central_rights.h"
#include "central/orders.h"
#include "central/purchase_orders_http.h"
#include "central/returns_http.h"
#include "central/transfers_http.h"
#include "google/protobuf/struct.pb.h"
#include "common/http_json.h"
#include "common/json.h"
#include "common/order_state.h"
#include "common/request_context.h"

namespace depot::central {
namespace {

using http::Request;
using http::Responder;
using http::JsonOk;
using http::Reply;
using http::Response;
using http::Worker;

// Splits "/v1/orders/ID/review" after `prefix` ("/v1/orders/") into ("ID", "review").
std::pair<std::string, std::string> IdAndAction(const std::string& path, std::string_view prefix) {
  std::string_view rest = std::string_view(path).substr(prefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return {http::PercentDecode(rest), ""};
  return {http::PercentDecode(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

// Parses an optional integer query parameter into *out; false (and an answer) when malformed.
template <typename Int>
bool QueryInt(const Request& req, const char* name, Int* out, const Responder& respond) {
  auto v = req.Query(name);
  if (!v || v->empty()) return true;
  if (!absl::SimpleAtoi(*v, out)) {
    respond(http::ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("query parameter ", name, "='", *v, "' is not a valid number"))));
    return false;
  }
  return true;
}

bool QueryBool(const Request& req, const char* name) {
  auto v = req.Query(name);
  return v && (*v == "1" || *v == "true" || *v == "yes");
}

// "ORDER_SHIPPED" or "shipped"; "" = no filter.
bool ParseOrderStatus(const std::string& text, v1::OrderStatus* out) {
  *out = v1::ORDER_STATUS_UNSPECIFIED;
  if (text.empty()) return true;
  if (v1::OrderStatus_Parse(text, out)) return true;
  for (int i = v1::OrderStatus_MIN; i <= v1::OrderStatus_MAX; ++i) {
    if (!v1::OrderStatus_IsValid(i)) continue;
    const auto s = static_cast<v1::OrderStatus>(i);
    if (text == orders::OrderStatusName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace

class CentralHttpApi::Impl {
 public:
  Impl(CentralService* service, metrics::Registry* registry)
      : service_(service), registry_(registry), returns_(service, registry) {
    registry_->AddCallbackGauge(
        "depot_central_events_applied_total", "Node events applied by central since it started.",
        [s = service_] { return static_cast<double>(s->events_applied()); });
    registry_->AddCallbackGauge(
        "depot_central_nodes_connected", "Nodes with an open, welcomed sync stream.",
        [s = service_] { return static_cast<double>(s->ConnectedNodes()); });
    if (PoStore* pos = service_->store()->purchase_orders()) {  // central/purchase_orders.h
      purchase_orders_ = std::make_unique<PurchaseOrderService>(
          pos, service_->clock(), [s = service_] { s->FeedChanged(); });
    }
    if (service_->store()->orders()) {  // transfers between sites (central/transfers.h)
      transfers_ = std::make_unique<TransferService>(service_->store(), service_->clock(),
                                                     [s = service_] { s->FeedChanged(); });
    }
  }

  void Handle(Request&& req, Responder respond);

 private:
  Responder Measured(const std::string& route, Responder respond) {
    return http::Measured(registry_, route, std::move(respond));
  }

  void HandleOrders(Request&& req, Responder respond);
  void HandleExceptionAction(Request&& req, Responder respond);
  void HandleRights(Request&& req, Responder respond);

  CentralService* service_;
  metrics::Registry* registry_;
  // Before the workers: destroyed after them, so no queued job outlives it.
  std::unique_ptr<PurchaseOrderService> purchase_orders_;  // nullptr without a PoStore
  std::unique_ptr<TransferService> transfers_;  // nullptr without an OrderStore
  ReturnsHttp returns_;  // /v1/returns, /v1/kpi/returns (central/returns_http.h)
  Worker import_worker_;  // imports: long transactions
  Worker read_worker_;    // reads of the store, which may wait behind a write transaction
  Worker write_worker_;   // small writes that are not order operations (exception actions)
};

void CentralHttpApi::Impl::Handle(Request&& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED", absl::StrCat(m, " is not allowed on ", p)));
  };

  if (http::ServeHealthAndMetrics(req, registry_, respond)) return;
  if (returns_.Handle(req, respond)) return;  // returns (central/returns_http.h)
  if (p == "/v1/stock") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    v1::NetworkStockRequest q;
    q.set_sku(req.Query("sku").value_or(""));
    q.set_site(req.Query("site").value_or(""));
    return read_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->GetNetworkStock(q), respond);
    });
  }
  if (p.starts_with("/v1/serials/")) {  // the network's serial registry (central/serials.h)
    respond = Measured("/v1/serials/{sku}/{serial}", std::move(respond));
    if (m != "GET") return not_allowed(respond);
    auto [sku, rest] = IdAndAction(p, "/v1/serials/");
    if (sku.empty() || rest.empty() || rest.find('/') != std::string::npos) {
      return respond(
          http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    }
    OrderStore* os = service_->store()->orders();
    if (os == nullptr) {
      return respond(http::ErrorResponse(absl::UnimplementedError("no order store: no serials")));
    }
    return read_worker_.Post([os, sku = std::move(sku), serial = http::PercentDecode(rest),
                              respond = std::move(respond)]() mutable {
      Reply(os->GetSerial(sku, serial), respond);
    });
  }
  if (p == "/v1/kpi/inventory-accuracy") {  // cycle counts per site (Event.count)
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    int64_t from_ms = 0, to_ms = 0;
    if (!QueryInt(req, "from_ms", &from_ms, respond)) return;
    if (!QueryInt(req, "to_ms", &to_ms, respond)) return;
    return read_worker_.Post([this, site = req.Query("site").value_or(""), from_ms, to_ms,
                              respond = std::move(respond)]() mutable {
      Reply(service_->store()->InventoryAccuracy(site, from_ms, to_ms), respond);
    });
  }
  if (p == "/v1/nodes") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    return read_worker_.Post([this, respond = std::move(respond)]() mutable {
      Reply(service_->ListNodes(), respond);
    });
  }
  if (p == "/v1/exceptions") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    v1::ListExceptionsRequest q;
    q.set_node_id(req.Query("node_id").value_or(""));
    q.set_kind(req.Query("kind").value_or(""));
    q.set_order_id(req.Query("order_id").value_or(""));
    q.set_sku(req.Query("sku").value_or(""));
    q.set_assignee(req.Query("assignee").value_or(""));
    q.set_include_resolved(QueryBool(req, "include_resolved"));
    return read_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->ListExceptions(q), respond);
    });
  }
  if (p.starts_with("/v1/exceptions/"))
    return HandleExceptionAction(std::move(req), std::move(respond));
  if (p == "/v1/channels") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    return read_worker_.Post([this, respond = std::move(respond)]() mutable {
      Reply(service_->ListChannels(), respond);
    });
  }
  if (p == "/v1/orders" || p.starts_with("/v1/orders/") || p == "/v1/kpis") {
    return HandleOrders(std::move(req), std::move(respond));
  }
  if (p == "/v1/rights" || p.starts_with("/v1/rights/") || p == "/v1/listings") {
    return HandleRights(std::move(req), std::move(respond));
  }
  if (HandlePurchasingHttp(purchase_orders_.get(), req, respond, &read_worker_, &write_worker_,
                           registry_)) {
    return;
  }
  if (HandleTransfersHttp(transfers_.get(), req, respond, &read_worker_, &write_worker_,
                          registry_)) {
    return;
  }
  if (p.starts_with("/v1/import/")) {
    respond = Measured("/v1/import", std::move(respond));
    if (m != "POST") return not_allowed(respond);
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
    v1::ImportRequest q;
    q.set_kind(p.substr(sizeof("/v1/import/") - 1));
    if (q.kind() != "skus" && q.kind() != "sites" && q.kind() != "bins" && q.kind() != "channels" &&
        q.kind() != "kits") {
      return respond(
          http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    }
    q.set_csv(std::move(req.body));
    return import_worker_.Post([this, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(service_->Import(q), respond);
    });
  }
  respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
}

// POST /v1/exceptions/{id}/assign {assignee}, POST /v1/exceptions/{id}/resolve {note}
void CentralHttpApi::Impl::HandleExceptionAction(Request&& req, Responder respond) {
  auto [id_text, action] = IdAndAction(req.path, "/v1/exceptions/");
  if (action != "assign" && action != "resolve") {
    return respond(http::ErrorResponse(
        404, "NOT_FOUND", absl::StrCat("no route for ", req.method, " ", req.path)));
  }
  respond = Measured(absl::StrCat("/v1/exceptions/{id}/", action), std::move(respond));
  if (req.method != "POST") {
    return respond(http::ErrorResponse(
        405, "METHOD_NOT_ALLOWED", absl::StrCat(req.method, " is not allowed on ", req.path)));
  }
  auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
  if (!ctx.ok()) return respond(http::ErrorResponse(ctx.status()));
  v1::ExceptionActionRequest q;
  if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
  uint64_t id = 0;
  if (!absl::SimpleAtoi(id_text, &id) || id == 0) {
    return respond(http::ErrorResponse(absl::InvalidArgumentError(
        absl::StrCat("'", id_text, "' is not an exception id"))));
  }
  q.set_id(id);
  const bool assign = action == "assign";
  write_worker_.Post([this, q = std::move(q), assign, respond = std::move(respond)]() mutable {
    if (assign) return Reply(service_->AssignException(q), respond);
    Reply(service_->ResolveException(q), respond);
  });
}

// Orders and KPIs: reads on the read worker, writes through the order service's writer (its
// callbacks answer after the commit).
void CentralHttpApi::Impl::HandleOrders(Request&& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  OrderService* orders = service_->orders();
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED", absl::StrCat(m, " is not allowed on ", p)));
  };
  auto operator_id = [&]() -> absl::StatusOr<std::string> {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return ctx.status();
    return ctx->operator_id;
  };
  auto order_reply = [](Responder respond) {
    return [respond = std::move(respond)](absl::StatusOr<v1::Order> r) { Reply(r, respond); };
  };

  if (p == "/v1/kpis") {
    respond = Measured(p, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    if (!orders) return respond(http::ErrorResponse(absl::UnimplementedError("no order service")));
    v1::KpiRequest q;
    int64_t from = 0, to = 0;
    if (!QueryInt(req, "from_ms", &from, respond) || !QueryInt(req, "to_ms", &to, respond)) return;
    q.set_from_ms(from);
    q.set_to_ms(to);
    return read_worker_.Post([orders, q = std::move(q), respond = std::move(respond)]() mutable {
      Reply(orders->Kpis(q), respond);
    });
  }
  if (p == "/v1/orders") {
    respond = Measured(p, std::move(respond));
    if (!orders) return respond(http::ErrorResponse(absl::UnimplementedError("no order service")));
    if (m == "GET") {
      v1::ListOrdersRequest q;
      v1::OrderStatus status;
      const std::string status_text = req.Query("status").value_or("");
      if (!ParseOrderStatus(status_text, &status)) {
        return respond(http::ErrorResponse(absl::InvalidArgumentError(absl::StrCat(
            "status '", status_text, "' is not an order status (e.g. ORDER_SHIPPED or shipped)"))));
      }
      q.set_status(status);
      q.set_channel(req.Query("channel").value_or(""));
      q.set_site(req.Query("site").value_or(""));
      q.set_after(req.Query("after").value_or(""));
      uint32_t limit = 0;
      if (!QueryInt(req, "limit", &limit, respond)) return;
      q.set_limit(limit);
      return read_worker_.Post([orders, q = std::move(q), respond = std::move(respond)]() mutable {
        Reply(orders->List(q), respond);
      });
    }
    if (m != "POST") return not_allowed(respond);
    auto op = operator_id();
    if (!op.ok()) return respond(http::ErrorResponse(op.status()));
    v1::CaptureOrderRequest q;
    if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
    return orders->CaptureAsync(
        std::move(q), *op,
        [respond = std::move(respond)](absl::StatusOr<v1::CaptureOrderResponse> r) {
          if (!r.ok()) return respond(http::ErrorResponse(r.status()));
          respond(http::JsonOk(*r, r->replayed() ? 200 : 201));
        });
  }
  // /v1/orders/{id}[/action]
  auto [id, action] = IdAndAction(p, "/v1/orders/");
  if (id.empty() || (!action.empty() && action != "review" && action != "cancel" &&
                     action != "delivery")) {
    return respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
  }
  respond = Measured(action.empty() ? "/v1/orders/{id}" : absl::StrCat("/v1/orders/{id}/", action),
                     std::move(respond));
  if (!orders) return respond(http::ErrorResponse(absl::UnimplementedError("no order service")));
  if (action.empty()) {
    if (m != "GET") return not_allowed(respond);
    return read_worker_.Post([orders, id = std::move(id), respond = std::move(respond)]() mutable {
      Reply(orders->Get(id), respond);
    });
  }
  if (m != "POST") return not_allowed(respond);
  auto op = operator_id();
  if (!op.ok()) return respond(http::ErrorResponse(op.status()));
  // The body's order_id (if any) is replaced by the path's.
  if (action == "review") {
    v1::ReviewOrderRequest q;
    if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
    q.set_order_id(id);
    return orders->ReviewAsync(std::move(q), *op, order_reply(std::move(respond)));
  }
  if (action == "cancel") {
    v1::CancelOrderRequest q;
    if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
    q.set_order_id(id);
    return orders->CancelAsync(std::move(q), *op, order_reply(std::move(respond)));
  }
  v1::DeliveryRequest q;
  if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
  q.set_order_id(id);
  orders->ConfirmDeliveryAsync(std::move(q), *op, order_reply(std::move(respond)));
}

// Selling rights and listings: reads on the read worker, writes (release, policy) on the write
// worker; both run RightsService's operations.
void CentralHttpApi::Impl::HandleRights(Request&& req, Responder respond) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  RightsService* rights = service_->rights();
  auto not_allowed = [&](Responder& r) {
    r(http::ErrorResponse(405, "METHOD_NOT_ALLOWED", absl::StrCat(m, " is not allowed on ", p)));
  };
  auto unimplemented = [](Responder& r) {
    r(http::ErrorResponse(absl::UnimplementedError("no selling rights at this central")));
  };
  auto operator_id = [&]() -> absl::StatusOr<std::string> {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) return ctx.status();
    return ctx->operator_id;
  };
  auto read = [&](const std::string& route, auto fn) {
    respond = Measured(route, std::move(respond));
    if (m != "GET") return not_allowed(respond);
    if (!rights) return unimplemented(respond);
    read_worker_.Post([rights, fn = std::move(fn), respond = std::move(respond)]() mutable {
      fn(rights, respond);
    });
  };

  if (p == "/v1/rights") {
    v1::ListRightsRequest q;
    q.set_site(req.Query("site").value_or(""));
    q.set_sku(req.Query("sku").value_or(""));
    return read(p, [q](RightsService* r, Responder& respond) { Reply(r->List(q), respond); });
  }
  if (p == "/v1/rights/history") {
    v1::RightsHistoryRequest q;
    q.set_site(req.Query("site").value_or(""));
    q.set_sku(req.Query("sku").value_or(""));
    uint32_t limit = 0;
    if (!QueryInt(req, "limit", &limit, respond)) return;
    q.set_limit(limit);
    return read(p, [q](RightsService* r, Responder& respond) { Reply(r->History(q), respond); });
  }
  if (p == "/v1/rights/verify") {
    return read(p, [](RightsService* r, Responder& respond) {
      auto v = r->Verify();
      if (!v.ok()) return respond(http::ErrorResponse(v.status()));
      google::protobuf::Struct out;
      auto& fields = *out.mutable_fields();
      fields["ok"].set_bool_value(v->empty());
      auto* list = fields["violations"].mutable_list_value();
      for (const std::string& s : *v) list->add_values()->set_string_value(s);
      respond(http::JsonOk(out));
    });
  }
  if (p == "/v1/listings") {
    v1::ListingsRequest q;
    q.set_channel(req.Query("channel").value_or(""));
    return read(p, [q](RightsService* r, Responder& respond) { Reply(r->Listings(q), respond); });
  }
  if (p == "/v1/rights/policies") {
    return read(p, [](RightsService* r, Responder& respond) { Reply(r->ListPolicies(), respond); });
  }
  if (p == "/v1/rights/release") {
    respond = Measured(p, std::move(respond));
    if (m != "POST") return not_allowed(respond);
    if (!rights) return unimplemented(respond);
    auto op = operator_id();
    if (!op.ok()) return respond(http::ErrorResponse(op.status()));
    v1::ReleaseRightsRequest q;
    if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
    return write_worker_.Post(
        [rights, q = std::move(q), op = *op, respond = std::move(respond)]() mutable {
          Reply(rights->Release(q, op), respond);
        });
  }
  if (p.starts_with("/v1/rights/policies/")) {
    auto [site, rest] = IdAndAction(p, "/v1/rights/policies/");
    if (site.empty() || !rest.empty()) {
      return respond(
          http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
    }
    respond = Measured("/v1/rights/policies/{site}", std::move(respond));
    if (m != "PUT") return not_allowed(respond);
    if (!rights) return unimplemented(respond);
    auto op = operator_id();
    if (!op.ok()) return respond(http::ErrorResponse(op.status()));
    v1::RightsPolicy q;
    if (auto s = JsonToMessage(req.body, &q); !s.ok()) return respond(http::ErrorResponse(s));
    q.set_site(site);  // the path names the site
    return write_worker_.Post(
        [rights, q = std::move(q), op = *op, respond = std::move(respond)]() mutable {
          Reply(rights->SetPolicy(q, op), respond);
        });
  }
  respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
}

CentralHttpApi::CentralHttpApi(CentralService* service, metrics::Registry* registry)
    : impl_(std::make_unique<Impl>(service, registry)) {}
CentralHttpApi::~CentralHttpApi() = default;

void CentralHttpApi::Handle(http::Request&& request, http::Responder respond) {
  impl_->Handle(std::move(request), std::move(respond));
}

}  // namespace depot::central
