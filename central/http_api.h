// depot-central's JSON-over-HTTP API: a thin adapter over CentralService, on the same protobuf
// messages as the gRPC service Central (proto/depot/v1/central.proto). Routes:
//
//   GET  /v1/stock?sku=&site=          NetworkStockResponse (at least one of sku, site)
//   GET  /v1/nodes                     ListNodesResponse
//   GET  /v1/exceptions?node_id=&kind= ListExceptionsResponse
//   POST /v1/import/skus|sites|bins    CSV body -> ImportResult (needs X-Depot-Operator)
//   GET  /healthz, GET /metrics
//
// Errors use the project-wide JSON error body (http::ErrorResponse). Imports run on a worker
// thread, never on an I/O thread.
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
