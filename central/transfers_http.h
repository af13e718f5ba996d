// JSON-over-HTTP routes of transfers between sites at central (central/transfers.h), called by
// CentralHttpApi:
//
//   POST /v1/transfers                     CreateTransferRequest -> Transfer (201; 200 when
//                                          replayed by request_id; 409 beyond central's rights)
//   GET  /v1/transfers?status=&site=&sku=&limit=   ListTransfersResponse (newest first; status as
//                                          TRANSFER_SHIPPED, shipped or in_transit)
//   GET  /v1/transfers/{id}                Transfer
//   GET  /v1/in-transit?sku=&site=         InTransitResponse (per SKU and destination, per SKU)
//
// Writes need the X-Depot-Operator header. Reads run on `reads`, writes on `writes` (never on an
// I/O thread).
#pragma once

#include "central/transfers.h"
#include "common/http_json.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace depot::central {

// True when the path is one of these routes (then respond is called, now or later). service may
// be nullptr (a store without orders): the routes answer UNIMPLEMENTED.
bool HandleTransfersHttp(TransferService* service, http::Request& req, http::Responder& respond,
                         http::Worker* reads, http::Worker* writes, metrics::Registry* registry);

}  // namespace depot::central
