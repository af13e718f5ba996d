// JSON-over-HTTP routes of transfers between sites at the node (node/transfers.h), called by
// NodeHttpApi:
//
//   GET  /v1/transfers?status=&site=&sku=&limit=   ListTransfersResponse (newest first; status
//                                                  as TRANSFER_SHIPPED, shipped or in_transit)
//   GET  /v1/transfers/{id}                        Transfer
//   POST /v1/transfers                             CreateTransferRequest -> Transfer (ordered here,
//                                                  this site is the source)
//   POST /v1/transfers/{id}/ship                   ShipTransferRequest -> Transfer
//   POST /v1/transfers/{id}/cancel                 ShipTransferRequest {reason} -> Transfer
//   POST /v1/transfers/{id}/receive                ReceiveTransferRequest -> Transfer
//
// Writes answer 201 (200 when replayed by request_id) and go through the group committer; the
// transfer id is taken from the path. Reads use the ledger's read connections.
#pragma once

#include <string>

#include "common/http_server.h"
#include "common/metrics.h"
#include "depot/v1/transfers.pb.h"
#include "node/group_commit.h"
#include "node/ledger.h"
#include "node/sync_client.h"

namespace depot::node {

// True when the path is one of these routes (then respond is called, now or later). client may
// be nullptr (no central); it is notified after a write committed.
bool HandleTransfersHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond);

}  // namespace depot::node
