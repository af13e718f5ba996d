// Selling rights (escrow / bounded counter) for one (site, SKU): the pure arithmetic behind SYNC.md
// "No overselling without coordination" and invariants 2 (rights conservation) and 3 (no silent
// oversell). Plain C++ over plain data: no SQLite, gRPC or Asio, so unit tests and the simulation
// call it directly. The node's book (node/rights_book.*) and central's store use Plan, LocalTarget
// and RefillFromCentral; the rest is the reference model the unit tests check (docs/SYNC.md).
//
// Accounting convention (one, used everywhere below):
// - A unit received at the node is first *unassigned* (held by the node, not sellable by anyone).
// - Distribute turns unassigned units into rights: the node's *local rights* or rights granted to
//   central. Granting is a Transfer message node -> central; releasing back is a Transfer central ->
//   node. Each side changes its own counters only when it sends or applies a message, so a right is
//   in exactly one place: at the node, at central, or in flight. Rights are never copied.
// - A right is *consumed* when its goods leave on_hand. Local sales are over the counter: the
//   commitment and the goods leaving happen at once, so LocalSale decrements local_rights and
//   on_hand and increments local_committed (a cumulative count of consumed local rights). The node
//   therefore never holds outstanding local commitments: what it may still sell is local_rights.
// - Central commits (Allocate) against its rights without a round trip; central_committed counts
//   allocations not yet reported shipped. The allocation goes down to the node as an Allocation
//   message; the node ships it (consuming on_hand) and reports back a ShipReport; on that report
//   central consumes the rights (central_rights and central_committed both drop by the allocation).
// - Physical loss is the only thing that can make rights exceed on_hand - safety_stock. Loss takes
//   unassigned units first, then local rights (the node can revoke its own rights without asking);
//   what remains unbacked is central's rights, reported as a LossException naming the shortfall.
//
// Thread-safety: none; callers serialise access to a book (the node in its ledger transaction,
// central in its apply transaction). Ordering: the sync streams deliver messages exactly once and
// in order; Transfer.seq is checked so a duplicate or gap is refused rather than double-counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace depot::rights {

enum class Side { kNode, kCentral };

// A movement of rights between the node and central. seq is per direction, gap-free from 1.
struct Transfer {
  Side from = Side::kNode;
  int64_t units = 0;
  uint64_t seq = 0;
};

// Central -> node: ship `units` of a marketplace order allocated against central's rights here.
struct Allocation {
  uint64_t id = 0;
  int64_t units = 0;
};

// Node -> central: what happened to an Allocation. shipped < allocated only after a physical loss;
// the unshipped units' rights are written off (the goods behind them are gone) and the order is
// re-routed by allocation (not modelled here).
struct ShipReport {
  uint64_t allocation_id = 0;
  int64_t allocated = 0;
  int64_t shipped = 0;
};

// The node's book for one (site, SKU). All counts are units and never negative.
struct SiteBook {
  int64_t on_hand = 0;
  int64_t safety_stock = 0;   // never sold; rights cover at most on_hand - safety_stock
  int64_t unassigned = 0;     // held by the node, not yet turned into rights
  int64_t local_rights = 0;   // unconsumed rights the node may sell locally with no round trip
  int64_t local_committed = 0;  // cumulative local sales; each consumed one local right
  // Rights granted to central and not yet come back (released, or consumed by a ShipReport).
  // Central's own count can be lower (a release in flight) or higher (a ShipReport in flight).
  int64_t central_rights_granted = 0;

  // Cumulative counters for the invariant checks and audit.
  int64_t received = 0;               // all receipts
  int64_t local_rights_received = 0;  // all local rights ever assigned or released back to local
  int64_t written_off = 0;            // lost units taken from unassigned or local rights
  int64_t central_shipped = 0;        // units shipped for central's allocations
  int64_t shortfall_reported = 0;     // sum of LossException::shortfall

  uint64_t last_grant_seq_sent = 0;
  uint64_t last_release_seq_applied = 0;

  int64_t Sellable() const { return on_hand - safety_stock; }
  // Rights outstanding as far as the node knows: every one may be committed without asking it.
  int64_t RightsOutstanding() const { return local_rights + central_rights_granted; }
};

// Central's view of one (site, SKU).
struct CentralBook {
  int64_t central_rights = 0;     // granted to central and received, not released or consumed
  int64_t central_committed = 0;  // allocated and not yet reported shipped; <= central_rights
  int64_t consumed = 0;           // cumulative units shipped for central
  int64_t written_off = 0;        // cumulative rights written off by short ShipReports
  uint64_t last_grant_seq_applied = 0;
  uint64_t last_release_seq_sent = 0;
  uint64_t last_allocation_id = 0;

  int64_t Available() const { return central_rights - central_committed; }
};

// How a store splits its sellable stock. The local target is
//   max(floor_units, store_share_units > 0 ? store_share_units
//                                          : sellable * store_share_percent / 100  (rounded down)),
// local is topped up to that target first, central may take the rest.
struct Policy {
  int store_share_percent = 30;  // 0..100, used when store_share_units == 0
  int64_t store_share_units = 0;
  int64_t floor_units = 0;       // local keeps at least this many rights when stock allows
  int64_t refill_below = 0;      // node asks central for rights when local_rights < this
};

// The policy's local target for a given sellable quantity (see Policy).
int64_t LocalTarget(int64_t sellable, const Policy& policy);

struct Split {
  int64_t to_local = 0;
  int64_t to_central = 0;
};

// How many unassigned units Distribute would turn into rights, and for whom. Only units that are
// both unassigned and backed by sellable stock not already covered by rights are assigned, so
// Distribute never breaks RightsOutstanding() <= Sellable().
Split Plan(const SiteBook& book, const Policy& policy);

// True when the node should ask central for rights back (local_rights < policy.refill_below).
bool NeedsRefill(const SiteBook& book, const Policy& policy);

// What central releases when the node asks: half (rounded down) of what it can spare,
// central_rights - central_committed.
int64_t RefillFromCentral(const CentralBook& book);

// The node's report when a loss leaves central's rights not backed by sellable stock. shortfall is
// the new excess this loss caused; total_excess = RightsOutstanding() - max(0, Sellable()) after it,
// which central's rights account for entirely (local rights were revoked first).
struct LossException {
  int64_t units_lost = 0;
  int64_t shortfall = 0;
  int64_t total_excess = 0;
  int64_t on_hand = 0;
  int64_t sellable = 0;
  int64_t central_rights_at_risk = 0;
};

// ---- Node operations. On error nothing changes. Units must be > 0 (InvalidArgument).

// Goods in: on_hand and unassigned grow.
absl::Status Receipt(SiteBook* book, int64_t units);
// Applies Plan: moves unassigned units into local_rights and returns the grant for central's share
// (units == 0 and no seq used when central gets nothing; send it only when units > 0).
Transfer Distribute(SiteBook* book, const Policy& policy);
// Over-the-counter sale: FailedPrecondition "only N available for local sale" beyond local_rights.
absl::Status LocalSale(SiteBook* book, int64_t units);
// Rights released back by central go to local_rights. Refuses a transfer not from central, or with
// seq != last applied + 1 (FailedPrecondition), or releasing more than central_rights_granted.
absl::Status ApplyFromCentral(SiteBook* book, const Transfer& transfer);
// Ships a central allocation from on_hand (as many as are on hand); central's rights for the whole
// allocation leave the node's view. Returns the report to send up.
absl::StatusOr<ShipReport> ApplyAllocation(SiteBook* book, const Allocation& allocation);
// Damage, theft, count variance: on_hand shrinks (FailedPrecondition beyond on_hand). Returns a
// LossException when central's rights are no longer backed by sellable stock, else nullopt.
absl::StatusOr<std::optional<LossException>> Loss(SiteBook* book, int64_t units);

// ---- Central operations. On error nothing changes.

// Applies a grant from the node: seq must be last applied + 1.
absl::Status ApplyGrant(CentralBook* book, const Transfer& transfer);
// Commits a marketplace order here: FailedPrecondition "only N available for central allocation"
// beyond central_rights - central_committed. Returns the message for the node.
absl::StatusOr<Allocation> Allocate(CentralBook* book, int64_t units);
// Releases unused rights to the node: FailedPrecondition beyond central_rights - central_committed.
absl::StatusOr<Transfer> ReleaseBack(CentralBook* book, int64_t units);
// Applies the node's ShipReport: the allocation's rights are consumed (shipped) or written off.
absl::Status Shipped(CentralBook* book, const ShipReport& report);

// ---- Invariant checks. Each returns a description of the first violation, or "" when fine.

// Messages sent and not yet applied, by kind, in units.
struct InFlight {
  int64_t grants = 0;        // node -> central Transfers
  int64_t releases = 0;      // central -> node Transfers
  int64_t ship_reports = 0;  // node -> central ShipReport.allocated
  int64_t allocations = 0;   // central -> node Allocation.units
};

// Invariant 2: received == unassigned + local_rights + local consumed + node write-offs
//   + central_rights + central consumed + central write-offs + grants and releases in flight,
// and the node's central_rights_granted == central_rights + grants + releases - ship reports in
// flight; no counter negative.
std::string CheckConservation(const SiteBook& node, const CentralBook& central,
                              const InFlight& in_flight);

// Invariant 3: local_committed <= local_rights_received; central_committed <= central_rights;
// rights outstanding and central's commitments still to ship each <= max(0, on_hand -
// safety_stock) + shortfall_reported (the loss exceptions explain the rest); on_hand >= 0.
std::string CheckNoOversell(const SiteBook& node, const CentralBook& central,
                            const InFlight& in_flight);

// ---- The baseline without rights: one shared counter of available units for the site
// (on_hand - safety_stock - committed not yet shipped). The node and central each sell against
// their own last-known copy, which changes by their own commitments at once and by the other
// side's only when its delta message arrives. Used to show that this policy oversells under
// partitions. Deltas are returned to the caller to queue; apply them in order, exactly once.
class NaiveBook {
 public:
  explicit NaiveBook(int64_t safety_stock = 0)
      : truth_(-safety_stock), node_view_(-safety_stock), central_view_(-safety_stock) {}

  // Node side. Each returns the delta to send to central (0: nothing to send).
  int64_t Receipt(int64_t units);
  // Refused (returns false, sends nothing) when the node's copy is below units.
  bool LocalSale(int64_t units, int64_t* delta_to_central);
  int64_t Loss(int64_t units);
  void ApplyCentralDelta(int64_t delta) { node_view_ += delta; }

  // Central side. Refused when central's copy is below units.
  bool Allocate(int64_t units, int64_t* delta_to_node);
  void ApplyNodeDelta(int64_t delta) { central_view_ += delta; }

  int64_t truth() const { return truth_; }
  int64_t node_view() const { return node_view_; }
  int64_t central_view() const { return central_view_; }
  // Units committed (sold or allocated) beyond what was really available at commit time,
  // not counting a shortfall already caused by loss.
  int64_t oversold_units() const { return oversold_; }

 private:
  void Commit(int64_t units);
  int64_t truth_;
  int64_t node_view_;
  int64_t central_view_;
  int64_t oversold_ = 0;
};

}  // namespace depot::rights
