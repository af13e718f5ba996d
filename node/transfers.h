// Transfers between sites at the node (docs/OPERATIONS.md "Transfers between sites",
// proto/depot/v1/transfers.proto).
//
// The node is the source or the destination of a transfer:
// - at the source, a transfer is ordered here (Operation transfer_create: id "<node>-T<n>") or
//   arrives from central's feed (FeedEntry.transfer in status requested). Its units are reserved
//   at once (reference = transfer id), so they cannot be sold or allocated twice. Selling rights:
//   a transfer ordered here is a local commitment (RightsBook::LocalCommit, refused beyond local
//   rights with the usual message); one ordered at central uses central's rights, which central
//   committed when it ordered it.
// - shipping (Operation transfer_ship) consumes what leaves (CONSUME rows, reason "transfer_out",
//   reference = transfer id) and releases the rest of the reservation; the rights follow
//   (LocalLeave / LocalRelease for a local transfer, CentralDelta shipped / returned for
//   central's). Cancelling (transfer_ship with cancel) releases everything before shipping.
// - at the destination, the shipped transfer arrives from central's feed; receiving (Operation
//   transfer_receive) writes RECEIPT rows (reason "transfer_in", reference = transfer id) into a
//   bin with the counted quantities and closes the transfer as received or
//   received_with_variance. The new units are unassigned in the rights book like any receipt.
// Every change emits an Event.transfer with the whole transfer (version + 1), in the same
// transaction as its movements. Central's feed entries replace the stored copy only when their
// version is higher.
//
// Like node/fulfilment.h this module has no transaction of its own: the ledger calls it inside
// its write transaction (group commit and request_id idempotency come from there). Nothing is
// written when an operation fails. Not thread-safe (the ledger's write lock serialises it).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/transfers.pb.h"
#include "node/fulfilment.h"
#include "node/stmt_cache.h"

namespace depot::node::transfers {

// Ledger schema migration for the transfers table.
extern const char* const kSchema;

// Movement reasons of the rows a transfer writes.
inline constexpr const char* kReasonOut = "transfer_out";
inline constexpr const char* kReasonIn = "transfer_in";

bool IsTransferOp(const v1::Operation& op);
// Applies transfer_create, transfer_ship or transfer_receive and fills result->transfer.
// Errors: InvalidArgument (malformed request, unknown line, more shipped than ordered, duplicate
// SKU), NotFound (unknown transfer, SKU or bin), FailedPrecondition (wrong site for the step,
// wrong status: not shipped yet, already shipped, received or cancelled; insufficient stock,
// ATP or local selling rights).
absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result);

// Central's feed: stores the transfer when its version is newer than the stored one; a new
// transfer whose source is this node and that is still requested reserves its units (the part
// the site's ATP allows; the rest is reserved when it ships or the ship is refused). Business
// problems never fail (they only log); storage errors do.
absl::Status ApplyFeed(LedgerTx& tx, const v1::Transfer& transfer);

// True when `reference` is a transfer's (its reservation is owned by the transfer: a plain
// release or consume of it is refused).
bool IsTransferReference(StmtCache& db, const std::string& reference);

// Reads (any connection). Newest first; status unspecified = all; limit 1..1000 (0 = 100).
absl::StatusOr<v1::ListTransfersResponse> List(StmtCache& db, const v1::ListTransfersRequest& r);
absl::StatusOr<v1::Transfer> Get(StmtCache& db, const std::string& transfer_id);
// The newest HLC a transfer change used (observed at open: HLC increases across restarts).
uint64_t LastHlc(StmtCache& db);

}  // namespace depot::node::transfers
