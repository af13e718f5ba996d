// JSON-over-HTTP routes of receiving against purchase orders (node/receiving.h), called by
// NodeHttpApi:
//
//   GET  /v1/purchase-orders?status=&limit=     ListPurchaseOrdersResponse (this site's copy)
//   GET  /v1/purchase-orders/{id}               PurchaseOrder
//   POST /v1/purchase-orders/{id}/receive       ReceivePoRequest -> ReceivePoResult (201; 200 when
//                                               replayed by request_id); po_id from the path
//   GET  /v1/putaway?sku=&lot=&quantity=        PutawaySuggestion
//
// The receive goes through the group committer like every write; reads use the ledger's read
// connections.
#pragma once

#include "common/http_server.h"
#include "common/metrics.h"
#include "node/group_commit.h"
#include "node/ledger.h"
#include "node/sync_client.h"

namespace depot::node {

// True when the path is one of these routes (then respond is called, now or later). client may
// be nullptr (no central); it is notified after a receipt committed.
bool HandleReceivingHttp(Ledger* ledger, GroupCommitter* committer, SyncClient* client,
                         metrics::Registry* registry, http::Request& req,
                         http::Responder& respond);

}  // namespace depot::node
