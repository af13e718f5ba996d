// depot-central's JSON-over-HTTP API: a thin adapter over CentralService, its OrderService and its
// RightsService, on the same protobuf messages as the gRPC services Central, Orders and Rights
// (proto/depot/v1/central.proto, orders.proto, rights.proto). Routes:
//
//   GET  /v1/stock?sku=&site=              NetworkStockResponse (at least one of sku, site)
//   GET  /v1/nodes                         ListNodesResponse
//   GET  /v1/exceptions?node_id=&kind=&order_id=&sku=&assignee=&include_resolved=true
//                                          ListExceptionsResponse (open ones unless
//                                          include_resolved)
//   POST /v1/exceptions/{id}/assign        ExceptionActionRequest {assignee} -> ExceptionEntry
//   POST /v1/exceptions/{id}/resolve       ExceptionActionRequest {note} -> ExceptionEntry
//   POST /v1/import/skus|sites|bins|channels|kits   CSV body -> ImportResult
//   GET  /v1/channels                      ListChannelsResponse (channels and kits)
//   POST /v1/orders                        CaptureOrderRequest -> CaptureOrderResponse
//                                          (201 created, 200 replayed)
//   GET  /v1/orders?status=&channel=&site=&after=&limit=   ListOrdersResponse (no history;
//                                          status as ORDER_SHIPPED or shipped)
//   GET  /v1/orders/{id}                   Order (fulfilments, reasons, history)
//   POST /v1/orders/{id}/review            ReviewOrderRequest {approve, note} -> Order
//   POST /v1/orders/{id}/cancel            CancelOrderRequest {reason} -> Order
//   POST /v1/orders/{id}/delivery          DeliveryRequest {fulfilment_id, failed, note} -> Order
//   GET  /v1/kpis?from_ms=&to_ms=          KpiResponse
//   GET  /v1/rights?site=&sku=             ListRightsResponse (central's book per site and SKU,
//                                          with the node's last reported book)
//   GET  /v1/rights/history?site=&sku=&limit=   RightsHistoryResponse (newest first, limit
//                                          default 100, at most 1000)
//   POST /v1/rights/release                ReleaseRightsRequest {site, sku, units, note} ->
//                                          CentralRights (409 beyond available)
//   GET  /v1/rights/policies               ListPoliciesResponse (every site's effective policy)
//   PUT  /v1/rights/policies/{site}        RightsPolicy -> RightsPolicy (400 when invalid)
//   GET  /v1/rights/verify                 {"ok": bool, "violations": [string]}: central's
//                                          rights identities (OrderStore::VerifyRights)
//   GET  /v1/listings?channel=             ListingsResponse (404 for an unknown channel)
//   GET  /healthz, GET /metrics
//
// Every POST and PUT needs the X-Depot-Operator header (401 without); order_id in a body is
// taken from the path, and so is a policy's site. Errors use the project-wide JSON error body
// (http::ErrorResponse). Imports run on a worker thread, reads on another, order writes on the
// order service's writer, rights writes on a write worker; never on an I/O thread.
#pragma once

#include <memory>

#include "central/grpc_service.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace depot::central {

class CentralHttpApi {
 public:
  // Both pointers must outlive this object. Registers central's gauges in registry.
  CentralHttpApi(CentralService* service, metrics::Registry* registry);
  ~CentralHttpApi();

  // http::Handler: thread-safe.
  void Handle(http::Request&& request, http::Responder respond);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::central
