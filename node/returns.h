// Returns at the node (docs/ORDERS.md "Returns"): receipt against a return authorisation (RMA)
// from central's feed or, at a store counter, without one; inspection and disposition (restock,
// refurbish, scrap); the refund. The node that receives the goods owns the return's progress
// (SYNC.md) and reports its whole state to central (Event.return_update) after every change.
//
// Stock: returned goods that wait for inspection are NOT stock. They are held in the return
// record (custody without a ledger balance), so they never count in on hand, ATP, the selling
// rights or central's mirror, and no bin is needed. Restocking is an ordinary RECEIPT movement
// (reason "return", reference = return id) into the named bin through the ledger's own stock
// path (LedgerTx::Stock): balances, lots, serials, the movement event and the selling rights
// ("a receipt creates unassigned units") are those of every receipt, and Verify() stays clean.
// Refurbish and scrap write no movement: those units never re-entered stock (the return record
// is their trail).
//
// Rules (errors; nothing is written when an operation fails):
// - receive with return_id: NotFound for an unknown RMA; InvalidArgument when a line names no
//   line of the RMA; FailedPrecondition when the quantity exceeds authorised - received (the
//   message names both), or the RMA was received at another site, or it is a counter return.
// - receive without return_id (counter return): order_id or external_ref, a valid reason and a
//   known SKU per line; the id is "<LocalIdPrefix>R<n>". Central checks it against the order.
// - serial-tracked SKUs name exactly `quantity` distinct serials, none in stock here.
// - disposition / refund: NotFound for an unknown return; FailedPrecondition when it was not
//   received at this site ("wrong site"), nothing is left to dispose (names the numbers), or it
//   was refunded already; InvalidArgument for an unknown action, a restock without a bin, a
//   negative amount, a serial that was not received.
//
// Like node/fulfilment.h this module has no transaction of its own: the ledger calls it inside
// its write transaction (group commit and request_id idempotency come from there).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/returns.pb.h"
#include "node/fulfilment.h"
#include "node/stmt_cache.h"

namespace depot::node::returns {

// Ledger schema migration for the returns table.
extern const char* const kSchema;

bool IsReturnOp(const v1::Operation& op);
// Applies op.return_receive / return_dispose / return_refund; fills result->ret.
absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result);

// An RMA from central's feed: stored when the node does not have it yet (only central's part:
// lines, authorised quantities, reasons). Central sends it again once a site received it (site
// set): a node that has not received it itself records that site and then refuses to receive it
// ("received at site X"); the node's own progress is never replaced. Storage errors throw.
void ApplyAuthorisation(StmtCache& db, const std::string& node_id, const v1::Return& rma);

// Reads (any connection). List: newest first, status unspecified = all, limit 1..10000.
absl::StatusOr<v1::ReturnsResponse> List(StmtCache& db, v1::ReturnStatus status, uint32_t limit);
absl::StatusOr<v1::Return> Get(StmtCache& db, const std::string& return_id);
// Newest HLC a return change used (observed at open so the clock increases across restarts).
uint64_t LastHlc(StmtCache& db);

}  // namespace depot::node::returns
