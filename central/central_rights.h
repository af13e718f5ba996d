// Central's side of the selling rights (docs/SYNC.md "Selling rights",
// proto/depot/v1/rights.proto): the rules that keep central's book per (site, SKU) in the `rights`
// row, and RightsService, the operations behind service Rights (gRPC) and /v1/rights, /v1/listings
// (HTTP).
//
// Central's book: central_rights are rights a node granted to central and central has not released,
// consumed (shipped) or written off; central_committed are the units of central's open fulfilments
// at the site (released, accepted, picking, picked, packed). Routing allocates only against
// available = central_rights - central_committed (central/routing.h).
//
// Every rule runs inside the caller's write transaction (OrderTx) and writes its feed entries,
// history rows and exceptions there, so a rights change commits with the event mark or the order
// change that caused it. None of them fails the sync stream: an inconsistency raises an exception
// entry (rights_seq, rights_conflict, rights_loss) and the event is still applied.
// Functions that take an OrderTx throw only on storage failure.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "central/store.h"
#include "common/clock.h"
#include "depot/v1/central.pb.h"

namespace depot::central::rights {

// Central asks a node for rights at most once per (site, SKU) until the node answers (a grant with
// reason "answer") or this long has passed.
inline constexpr int64_t kRequestRetryMs = 30000;

// ---- Inside ApplyEvents (the node's event stream)

// Applies one Event.rights of `node`:
// - grant: central_rights += units, granted_total += units; seq must be the last applied + 1 (a
//   0-unit answer carries seq 0 and is not checked), else exception rights_seq and applied anyway;
//   reason "answer" clears central's pending request.
// - request: answered at once with FeedEntry.rights_release{answer: true} of min(units asked (when
//   > 0), RefillFromCentral = half of available, rounded down); a 0-unit answer has seq 0 and
//   changes no counter.
// - loss: exception rights_loss naming the excess and the affected orders (the fulfilments the node
//   shorted and the open ones at the site with that SKU); central writes off min(excess, available)
//   with a FeedEntry.rights_release{write_off: true}.
// The event's book is stored as the node's side in every case.
void ApplyRightsEvent(OrderTx& tx, const std::string& node, const v1::Event& event);

// The rights side of merging a FulfilmentUpdate into central's fulfilment (`before` and `after` the
// merge; the order is central's, not node-local). Per line: a rise of `shipped` consumes rights and
// commitment (history "ship"), a rise of `short_quantity` returns them to the node
// ("short_return"); central_committed follows the open units (quantity - shipped - short of an open
// fulfilment), so a cancelled fulfilment, or one shipped with units neither shipped nor shorted,
// drops its commitment and the rights stay with central ("cancel"). A counter that would go
// negative raises rights_conflict and is clamped at 0.
void ApplyFulfilmentChange(OrderTx& tx, const std::string& node, const std::string& order_id,
                           const v1::Fulfilment& before, const v1::Fulfilment& after, int64_t at_ms,
                           uint64_t hlc);

// ---- Inside order transactions (central/orders.cc)

// A fulfilment was just released: commits its lines' units at its site (history "allocate",
// reference = the fulfilment id).
void CommitRelease(OrderTx& tx, const v1::Fulfilment& fulfilment, int64_t at_ms, uint64_t hlc);

// Releases `units` (> 0; the caller checked them against available) of central's rights at
// row->site back to the node: FeedEntry.rights_release with the next release seq, history
// "release". The caller saves the row.
void ReleaseToNode(OrderTx& tx, RightsRow* row, int64_t units, const std::string& reason,
                   uint64_t hlc, int64_t at_ms);

// Routing left `missing` units per SKU open (backordered). For each site in `candidates` that is
// online, whose mirror shows sellable stock of the SKU (on hand - reserved - safety > 0) and where
// central lacks rights (missing > what is still available there), appends a
// FeedEntry.rights_request{sku, units} to that site's feed, unless a request of central to that
// site for that SKU is pending (not answered, younger than kRequestRetryMs). Returns whether a feed
// entry was appended.
bool AskNodes(OrderTx& tx, const std::map<std::string, int64_t>& missing,
              const std::vector<std::string>& candidates, const std::set<std::string>& online,
              const std::string& order_id, int64_t now_ms, uint64_t hlc);

// Appends one history row of `row`'s (site, SKU) (kind: grant, release, allocate, ship,
// short_return, cancel, ...; seq 0 when the kind has none).
void AddHistory(OrderTx& tx, const RightsRow& row, uint64_t hlc, int64_t at_ms,
                const std::string& kind, int64_t units, uint64_t seq, const std::string& reference,
                const std::string& note);

// ---- Policies (pure)

// The default of a site's kind: store 30 %, warehouse 0 %; floor and refill 0, is_default.
v1::RightsPolicy DefaultPolicy(const std::string& site, const std::string& kind);
// The explicit policy when there is one, else the default of the site's kind.
v1::RightsPolicy EffectivePolicy(const v1::Site& site,
                                 const std::optional<v1::RightsPolicy>& explicit_policy);
// InvalidArgument unless the site is named, 0 <= percent <= 100 and units, floor and refill are >=
// 0.
absl::Status ValidatePolicy(const v1::RightsPolicy& policy);

// Published quantity: max(0, available - buffer).
int64_t ListingQuantity(int64_t available, int64_t buffer);

}  // namespace depot::central::rights

namespace depot::central {

// The operations of service Rights (central.proto) over the store; the gRPC service and the HTTP
// API are thin adapters over it. Writes run in one transaction of the store (OrderStore::RunBatch)
// and notify feed_changed after a commit that appended feed entries. Thread-safe.
class RightsService {
 public:
  // store must have an OrderStore (store->orders() != nullptr); store and clock outlive this.
  RightsService(CentralStore* store, const Clock* clock, std::function<void()> feed_changed);

  // Rows filtered by site and/or SKU (empty = all).
  absl::StatusOr<v1::ListRightsResponse> List(const v1::ListRightsRequest& request);
  // Newest first; limit 0 = 100, at most 1000 (InvalidArgument above).
  absl::StatusOr<v1::RightsHistoryResponse> History(const v1::RightsHistoryRequest& request);
  // A planner hands unused rights back to the site: InvalidArgument without site, SKU or units > 0;
  // NotFound for an unknown site or SKU; FailedPrecondition beyond available. Writes a
  // FeedEntry.rights_release (history "release") and returns the row after it.
  absl::StatusOr<v1::CentralRights> Release(const v1::ReleaseRightsRequest& request,
                                            const std::string& operator_id = "");
  // Every site's effective policy.
  absl::StatusOr<v1::ListPoliciesResponse> ListPolicies();
  // Sets the site's explicit policy (ValidatePolicy: InvalidArgument; unknown site NotFound); version
  // is the previous one + 1; appends a FeedEntry.rights_policy to the site's feed in the same transaction.
  // Returns the policy as stored.
  absl::StatusOr<v1::RightsPolicy> SetPolicy(const v1::RightsPolicy& policy,
                                             const std::string& operator_id = "");
  // Per SKU of the master data: the sum of central's available rights over the channel's sites
  // (site_priority; empty = every site), minus the channel's listing_buffer, floored at 0.
  // InvalidArgument without channel; NotFound for an unknown one.
  absl::StatusOr<v1::ListingsResponse> Listings(const v1::ListingsRequest& request);
  // OrderStore::VerifyRights: one sentence per violated identity; empty when all hold.
  absl::StatusOr<std::vector<std::string>> Verify();

 private:
  absl::Status RunTx(const std::function<absl::Status(OrderTx&, bool* fed)>& fn);

  CentralStore* store_;
  OrderStore* orders_;
  const Clock* clock_;
  HybridLogicalClock hlc_;
  std::function<void()> feed_changed_;
};

}  // namespace depot::central
