// JSON-over-HTTP routes of central's purchase orders (central/purchase_orders.h), called by
// CentralHttpApi for paths under /v1/purchase-orders and /v1/suppliers:
//
//   POST /v1/purchase-orders               PurchaseOrder -> PurchaseOrder (201)
//   POST /v1/purchase-orders/import        CSV body -> ImportPurchaseOrdersResponse (all or none)
//   GET  /v1/purchase-orders?site=&supplier=&status=&after=&limit=   ListPurchaseOrdersResponse
//   GET  /v1/purchase-orders/{id}          PurchaseOrder
//   POST /v1/purchase-orders/{id}/close    PurchaseOrderActionRequest {note} -> PurchaseOrder
//   POST /v1/purchase-orders/{id}/cancel   PurchaseOrderActionRequest {note} -> PurchaseOrder
//   GET  /v1/suppliers                     ListSuppliersResponse
//   PUT  /v1/suppliers/{id}                Supplier -> Supplier
//
// Writes need the X-Depot-Operator header. Reads run on `reads`, writes and imports on `writes`
// (never on an I/O thread).
#pragma once

#include "central/purchase_orders.h"
#include "common/http_json.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace depot::central {

// True when the path is one of these routes (then respond is called, now or later).
bool HandlePurchasingHttp(PurchaseOrderService* service, http::Request& req,
                          http::Responder& respond, http::Worker* reads, http::Worker* writes,
                          metrics::Registry* registry);

}  // namespace depot::central
