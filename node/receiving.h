// Receiving against purchase orders at the node (docs/OPERATIONS.md "Receiving against purchase
// orders") and put-away suggestions.
//
// Central owns a PO and sends it whole in this site's feed (FeedEntry.purchase_order); the node
// keeps the newest version of central's fields (lines, ordered quantities, tolerance, closed or
// cancelled) and its own received quantities, which only its receipts change. A receipt against
// a PO (Operation.po_receive) is validated against that copy, then written as ordinary RECEIPT
// movements (reason "po", reference = po_id) through the ledger's own stock path
// (LedgerTx::Stock), so balances, lots, serials, the movement events for central and the selling
// rights behave as for any receipt; the PO's received quantities change in the same
// transaction. All lines or nothing.
//
// Like node/fulfilment.h this module has no transaction of its own: the ledger calls it inside
// its write transaction (group commit and request_id idempotency come from there).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/purchasing.pb.h"
#include "node/fulfilment.h"
#include "node/stmt_cache.h"

namespace depot::node::receiving {

// Ledger schema migration for the node's copy of its purchase orders.
extern const char* const kSchema;

bool IsReceivingOp(const v1::Operation& op);

// Applies op.po_receive and fills result->po_receipt. Errors (nothing written): InvalidArgument
// (bad request, a SKU not on the PO, a plain receipt's rules), NotFound (unknown PO, SKU or bin),
// FailedPrecondition (PO of another site, closed short or cancelled, over-receipt beyond the
// tolerance: the message names the line and the most still allowed; no bin to put away in).
absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result);

// Plain receipts (POST /v1/receipts) may not pose as PO receipts: reason "po" is reserved for
// Apply (InvalidArgument); OK for every other operation.
absl::Status CheckPlainOperation(const v1::Operation& op);

// A PO from central's feed: stored when newer than the node's copy (by version), keeping the
// node's received quantities per SKU; the status is derived from them unless central closed or
// cancelled it. Storage errors throw.
void ApplyFeed(StmtCache& db, const v1::PurchaseOrder& po);

// Reads (any connection). List: by po_id, status unspecified = all, limit 1..10000.
absl::StatusOr<v1::ListPurchaseOrdersResponse> List(StmtCache& db,
                                                    v1::PurchaseOrderStatus status,
                                                    uint32_t limit);
absl::StatusOr<v1::PurchaseOrder> Get(StmtCache& db, const std::string& po_id);
// Where to put `sku` (and `lot`, may be empty) away: a bin holding the same SKU (the same lot
// when one is given) with the most on hand, ties by walk order then code; else the first empty
// bin (no balance rows at all) by walk order then code; else reason "none" and no bin. The
// staging bin is never suggested. NotFound for an unknown SKU.
absl::StatusOr<v1::PutawaySuggestion> SuggestPutaway(StmtCache& db, const std::string& sku,
                                                     const std::string& lot);

}  // namespace depot::node::receiving
