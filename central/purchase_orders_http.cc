#include "central/purchase_orders_http.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/request_context.h"

namespace depot::central {

using http::Reply;
using http::Responder;

bool HandlePurchasingHttp(PurchaseOrderService* service, http::Request& req, Responder& respond,
                          http::Worker* reads, http::Worker* writes, metrics::Registry* registry) {
  const std::string& m = req.method;
  const std::string& p = req.path;
  const bool pos = p == "/v1/purchase-orders" || p.starts_with("/v1/purchase-orders/");
  const bool suppliers = p == "/v1/suppliers" || p.starts_with("/v1/suppliers/");
  if (!pos && !suppliers) return false;

  auto measured = [&](const std::string& route) {
    respond = http::Measured(registry, route, std::move(respond));
  };
  auto not_allowed = [&] {
    respond(http::ErrorResponse(405, "METHOD_NOT_ALLOWED",
                                absl::StrCat(m, " is not allowed on ", p)));
  };
  auto no_route = [&] {
    respond(http::ErrorResponse(404, "NOT_FOUND", absl::StrCat("no route for ", m, " ", p)));
  };
  auto check_operator = [&]() -> bool {
    auto ctx = ContextFromOperatorHeader(req.Header(kOperatorHeader), req.remote);
    if (!ctx.ok()) {
      respond(http::ErrorResponse(ctx.status()));
      return false;
    }
    return true;
  };
  // Splits the rest after prefix into (id, action).
  auto id_action = [&](std::string_view prefix) -> std::pair<std::string, std::string> {
    std::string_view rest = std::string_view(p).substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return {http::PercentDecode(rest), ""};
    return {http::PercentDecode(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
  };
  if (service == nullptr) {
    respond(http::ErrorResponse(absl::UnimplementedError("no purchase orders at this central")));
    return true;
  }

  if (p == "/v1/suppliers") {
    measured(p);
    if (m != "GET") return not_allowed(), true;
    reads->Post([service, respond = std::move(respond)] {
      Reply(service->ListSuppliers(), respond);
    });
    return true;
  }
  if (suppliers) {
    auto [id, rest] = id_action("/v1/suppliers/");
    if (id.empty() || !rest.empty()) return no_route(), true;
    measured("/v1/suppliers/{id}");
    if (m != "PUT") return not_allowed(), true;
    if (!check_operator()) return true;
    v1::Supplier s;
    if (auto st = JsonToMessage(req.body, &s); !st.ok()) {
      respond(http::ErrorResponse(st));
      return true;
    }
    s.set_id(id);  // the path names the supplier
    writes->Post([service, s = std::move(s), respond = std::move(respond)] {
      Reply(service->SetSupplier(s), respond);
    });
    return true;
  }
  if (p == "/v1/purchase-orders") {
    measured(p);
    if (m == "GET") {
      uint32_t limit = 0;
      if (auto v = req.Query("limit"); v && !v->empty() && !absl::SimpleAtoi(*v, &limit)) {
        respond(http::ErrorResponse(
            absl::InvalidArgumentError(absl::StrCat("limit '", *v, "' is not a number"))));
        return true;
      }
      reads->Post([service, site = req.Query("site").value_or(""),
                   supplier = req.Query("supplier").value_or(""),
                   status = req.Query("status").value_or(""),
                   after = req.Query("after").value_or(""), limit,
                   respond = std::move(respond)] {
        Reply(service->List(site, supplier, status, after, limit), respond);
      });
      return true;
    }
    if (m != "POST") return not_allowed(), true;
    if (!check_operator()) return true;
    v1::PurchaseOrder po;
    if (auto st = JsonToMessage(req.body, &po); !st.ok()) {
      respond(http::ErrorResponse(st));
      return true;
    }
    writes->Post([service, po = std::move(po), respond = std::move(respond)] {
      auto r = service->Create(po);
      if (!r.ok()) return respond(http::ErrorResponse(r.status()));
      respond(http::JsonOk(*r, 201));
    });
    return true;
  }
  if (p == "/v1/purchase-orders/import") {
    measured(p);
    if (m != "POST") return not_allowed(), true;
    if (!check_operator()) return true;
    writes->Post([service, body = std::move(req.body), respond = std::move(respond)] {
      Reply(service->Import(body), respond);
    });
    return true;
  }
  auto [id, action] = id_action("/v1/purchase-orders/");
  if (id.empty() || (!action.empty() && action != "close" && action != "cancel")) {
    return no_route(), true;
  }
  if (action.empty()) {
    measured("/v1/purchase-orders/{id}");
    if (m != "GET") return not_allowed(), true;
    reads->Post([service, id = std::move(id), respond = std::move(respond)] {
      Reply(service->Get(id), respond);
    });
    return true;
  }
  measured(absl::StrCat("/v1/purchase-orders/{id}/", action));
  if (m != "POST") return not_allowed(), true;
  if (!check_operator()) return true;
  v1::PurchaseOrderActionRequest q;
  if (!req.body.empty()) {
    if (auto st = JsonToMessage(req.body, &q); !st.ok()) {
      respond(http::ErrorResponse(st));
      return true;
    }
  }
  q.set_po_id(id);
  const bool cancel = action == "cancel";
  writes->Post([service, q = std::move(q), cancel, respond = std::move(respond)] {
    Reply(cancel ? service->Cancel(q) : service->Close(q), respond);
  });
  return true;
}

}  // namespace depot::central
