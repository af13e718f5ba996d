// The node's order fulfilment (docs/ORDERS.md, "Node fulfilment"): releases and cancel requests
// from central's feed, waves and pick lists, pick, short pick, pack, ship, counter sales and
// click-and-collect. The node owns a fulfilment's state once it was released here (SYNC.md);
// every status change goes through orders::NodeTransition / orders::DecideCancel.
//
// This module has no transaction or connection of its own: the ledger calls it inside its write
// transaction (Ledger::Apply for the fulfilment members of v1::Operation, Ledger::ApplyFeed for
// FeedEntry.release / .cancel) and hands it a LedgerTx. Stock effects go through the ledger's
// own stock operations (reserve, release, move, consume), so balances, reservations, movements,
// their outbox events and Verify() stay right; each change appends one FulfilmentUpdate event
// (the fulfilment's whole state) to the outbox in the same transaction. Group commit and
// request_id idempotency come from the ledger.
//
// Stock of a fulfilment: reserved at release (reference = fulfilment_id); picked goods are moved
// to the node's staging bin (kStagingBin) and stay reserved; ship consumes them from there.
// FEFO consumption and pick-list allocation never draw from the staging bin.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "common/request_context.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/sync.pb.h"
#include "node/rights_book.h"
#include "node/stmt_cache.h"

namespace depot::node {

// The per-node bin picked goods wait in until they ship (created by the ledger at open; not
// master data: never listed by ListBins, never drawn from unless named).
inline constexpr const char* kStagingBin = "STAGING";

// What the fulfilment module may do inside the ledger's open write transaction. Implemented by
// the ledger; valid only during the call it is passed to. Errors are returned as Status; SQLite
// failures may also throw (the ledger turns them into a Status and rolls back).
class LedgerTx {
 public:
  virtual ~LedgerTx() = default;
  virtual const RequestContext& context() const = 0;
  virtual const std::string& node_id() const = 0;
  // Prefix of local order ids ("<node>-L", plus the epoch after a restore from backup, so a
  // rewound counter never issues an id central already has).
  virtual std::string LocalIdPrefix() const = 0;
  // One stock operation (receipt, move, reserve, release, consume, ...) through the ledger's own
  // code path: validation, balances, reservations, serials, movements and their outbox events.
  // Its rows join the current operation (one op_seq, the outer request_id).
  virtual absl::Status Stock(const v1::Operation& op) = 0;
  // The same with `reason` on every row it writes that has none (a consume has no reason of
  // its own: transfers mark theirs "transfer_out", node/transfers.h).
  virtual absl::Status StockWithReason(const v1::Operation& op, const std::string& reason) {
    (void)reason;
    return Stock(op);
  }
  // Appends a payload event (body set, e.g. fulfilment) to the outbox.
  virtual void Emit(v1::Event event) = 0;
  virtual uint64_t Now() = 0;  // hybrid logical clock
  // The node's UTC date (YYYY-MM-DD) from the ledger's clock: lots with an expiry before it are
  // expired (common/stock_rules.h LotExpired) and never allocated to picks.
  virtual std::string Today() = 0;
  virtual absl::StatusOr<v1::Sku> Sku(const std::string& code) = 0;
  virtual absl::StatusOr<v1::Atp> Atp(const std::string& sku) = 0;
  // The write connection and its statement cache, for the fulfilment tables.
  virtual StmtCache& stmts() = 0;
  // The selling-rights book (node/rights_book.h), to report local commitments and central's
  // shipped and shorted units.
  virtual RightsBook& rights() = 0;
  // Runs f in a nested savepoint: when f fails, everything it wrote (rows, events, the ledger's
  // sequence counters) is undone and its error returned.
  virtual absl::Status Savepoint(const std::function<absl::Status()>& f) = 0;
};

// Reserves (releases) q units of sku for `reference` through tx.Stock: the ledger's RESERVE and
// RELEASE operations (a release of q = 0 releases everything still open for the reference).
absl::Status ReserveStock(LedgerTx& tx, const std::string& sku, const std::string& reference,
                          int64_t q);
absl::Status ReleaseStock(LedgerTx& tx, const std::string& sku, const std::string& reference,
                          int64_t q);

namespace fulfilment {

// Ledger schema migration for the fulfilment tables.
extern const char* const kSchema;

bool IsFulfilmentOp(const v1::Operation& op);
// Applies a fulfilment member of op (wave, pick, short_pick, pack, ship, local_order, hand_out)
// and fills result->fulfilment (or ->wave). Nothing is written when it fails.
absl::Status Apply(LedgerTx& tx, const v1::Operation& op, v1::OperationResult* result);

// A loss left this SKU over-committed: shorts up to `units` unpicked units of central's open
// fulfilments (accepted or picking, newest first) with reason "stock_loss", so central re-routes
// them. Returns the fulfilment ids shorted.
absl::StatusOr<std::vector<std::string>> ShortForLoss(LedgerTx& tx, const std::string& sku,
                                                      int64_t units);

// Central's feed. A release creates the fulfilment and reserves what the site's ATP allows (the
// rest is short); a cancel is decided with orders::DecideCancel. Both are idempotent by
// fulfilment id. Business problems never fail (they become shorts or notes); only storage
// errors do.
absl::Status ApplyRelease(LedgerTx& tx, const v1::FulfilmentRelease& release);
absl::Status ApplyCancel(LedgerTx& tx, const v1::FulfilmentCancel& cancel);

// Reads (any connection).
struct ListFilter {
  v1::FulfilmentStatus status = v1::FULFILMENT_STATUS_UNSPECIFIED;  // unspecified: all
  std::string wave_id;
  uint32_t limit = 1000;  // newest first
};
absl::StatusOr<v1::FulfilmentsResponse> List(StmtCache& db, const ListFilter& filter);
absl::StatusOr<v1::NodeFulfilment> Get(StmtCache& db, const std::string& fulfilment_id);
absl::StatusOr<v1::WavesResponse> ListWaves(StmtCache& db, uint32_t limit);  // without tasks
absl::StatusOr<v1::Wave> GetWave(StmtCache& db, const std::string& wave_id);
// Number of fulfilments per status.
absl::StatusOr<std::map<int, int64_t>> CountByStatus(StmtCache& db);
// For Verify: the open reservation every fulfilment's lines account for, per (sku, reference).
absl::StatusOr<std::map<std::pair<std::string, std::string>, int64_t>> LineReservations(
    StmtCache& db);
// The newest HLC any fulfilment change used (observed at open: HLC increases across restarts).
uint64_t LastHlc(StmtCache& db);

}  // namespace fulfilment
}  // namespace depot::node
