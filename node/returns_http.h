// JSON-over-HTTP routes of returns at the node (node/returns.h), called by NodeHttpApi:
//
//   GET  /v1/returns?status=&limit=          ReturnsResponse (RMAs from central and returns
//                                            received here, newest first; status as
//                                            RETURN_RECEIVED or received)
//   GET  /v1/returns/{id}                    Return
//   POST /v1/returns                         ReceiveReturnRequest -> Return (receive against an
//                                            RMA, or a counter return without return_id)
//   POST /v1/returns/{id}/disposition        DisposeReturnRequest -> Return (return_id from the path)
//   POST /v1/returns/{id}/refund             RefundReturnRequest -> Return
//
// Writes answer 201 (200 when replayed by request_id) and go through the group committer.
#pragma once

#include "common/http_server.h"
#include "common/metrics.h"
#include "node/group_commit.h"
#include "node/ledger.h"
#include "node/sync_client.h"

namespace depot::node {

// True when the path is one of these routes (then respond is called, now or later). client may
// be nullptr (no central); it is notified after a write committed.
bool HandleReturnsHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                       metrics::Registry* registry, http::Request& req, http::Responder& respond);

}  // namespace depot::node
