// JSON-over-HTTP routes of central's returns (central/returns.h), a thin adapter that
// CentralHttpApi delegates to:
//
//   POST /v1/returns                 CreateReturnRequest -> Return (201; 404 unknown order,
//                                    409 unknown line or quantity above returnable, 400 bad input)
//   GET  /v1/returns?status=&order_id=&site=&limit=   ListReturnsResponse (newest first, with
//                                    the turnaround KPI of the listed returns; status as
//                                    RETURN_RECEIVED or received)
//   GET  /v1/returns/{id}            Return (404 unknown)
//   GET  /v1/kpi/returns?site=       ReturnKpiResponse (turnaround per site and reason)
//
// POST needs the X-Depot-Operator header (401). Work runs on the adapter's worker thread.
#pragma once

#include <memory>

#include "common/http_server.h"
#include "common/metrics.h"

namespace depot::central {

class CentralService;

class ReturnsHttp {
 public:
  // service and registry must outlive this object. Without an order store (service->store()
  // ->orders() == nullptr) the routes answer UNIMPLEMENTED.
  ReturnsHttp(CentralService* service, metrics::Registry* registry);
  ~ReturnsHttp();

  // Answers and returns true when request is one of the routes above; false (touching nothing)
  // otherwise. Thread-safe.
  bool Handle(http::Request& request, http::Responder& respond);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::central
