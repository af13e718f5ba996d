// depot-central's storage seam. The sync and allocation engines talk only to this interface, so
// a PostgreSQL backend can replace the embedded SQLite one (central/sqlite_store.*) without
// touching them.
//
// Contract for every implementation:
// - Each mutating call is one transaction: all of it or none of it.
// - ApplyEvents applies events in seq order starting exactly at the node's mark + 1, together
//   with their effects on the mirror and the new mark (exactly-once); it never skips a seq.
//   A fulfilment event (Event.fulfilment) is merged into central's order in the same transaction
//   (ApplyNodeUpdate in central/orders.h); an update that cannot be merged (unknown
//   fulfilment, conflict) raises an exception entry and is still applied: it never stalls the
//   stream. A rights event (Event.rights) changes central's rights book in the same transaction
//   (rights::ApplyRightsEvent in central/central_rights.h), with the same never-stall rule.
// - Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/sync.pb.h"

namespace depot::central {

class PoStore;  // central/purchase_orders.h

struct NodeRecord {
  std::string node_id;          // = the site id
  std::string name;
  uint64_t epoch = 0;           // current epoch, 0 = never connected
  uint64_t applied_seq = 0;     // mark for (node_id, epoch)
  uint64_t last_event_hlc = 0;  // HLC of the last applied event
  uint64_t feed_seq = 0;        // newest entry of this node's feed
  uint64_t feed_acked = 0;      // the node's acknowledged feed mark
};

// A site's stock as central mirrors it: (sku, lot) -> on hand, and sku -> reserved.
struct SiteMirror {
  std::map<std::pair<std::string, std::string>, int64_t> on_hand;
  std::map<std::string, int64_t> reserved;
};

class CentralStore {
 public:
  virtual ~CentralStore() = default;

  // Nodes. NotFound when node_id is not a registered site.
  virtual absl::StatusOr<NodeRecord> GetNode(const std::string& node_id) = 0;
  virtual absl::StatusOr<std::vector<NodeRecord>> ListNodes() = 0;
  virtual absl::StatusOr<bool> IsRetiredEpoch(const std::string& node_id, uint64_t epoch) = 0;
  // Makes new_epoch the node's current epoch (retiring the old one). Events of the old epoch with
  // seq > keep_through are reversed out of the mirror; returns how many were reversed. The new
  // epoch's mark starts at min(old mark, keep_through) because the node's sequence continues.
  virtual absl::StatusOr<uint64_t> BeginEpoch(const std::string& node_id, uint64_t new_epoch,
                                              uint64_t keep_through) = 0;

  // Applies events (contiguous, events[0].seq == mark + 1, all of node_id's current epoch) and
  // returns the new mark. FailedPrecondition if the precondition does not hold.
  // The events are borrowed for the call (pointers into the received batch: no copies).
  virtual absl::StatusOr<uint64_t> ApplyEvents(const std::string& node_id, uint64_t epoch,
                                               const std::vector<const v1::Event*>& events) = 0;
  // Order-independent digest of the events applied for a node's current chain, and their count.
  virtual absl::StatusOr<std::pair<uint64_t, uint64_t>> EventDigest(const std::string& node_id) = 0;

  // Feed of central-owned data to one node, seq gap-free per node.
  virtual absl::StatusOr<std::vector<v1::FeedEntry>> ReadFeed(const std::string& node_id,
                                                              uint64_t after, uint32_t limit) = 0;
  virtual absl::Status AckFeed(const std::string& node_id, uint64_t seq) = 0;

  // Exceptions. Sync anomalies: the same (node, kind, message) as the newest open entry of that
  // node and kind counts it up instead of adding one.
  virtual absl::Status AddException(const std::string& kind, const std::string& node_id,
                                    const std::string& message, int64_t at_ms) = 0;
  // Every entry, resolved or not (filters and the workflow: OrderStore::QueryExceptions).
  virtual absl::StatusOr<v1::ListExceptionsResponse> ListExceptions(const std::string& node_id,
                                                                    const std::string& kind) = 0;

  // Master data from CSV (kind: skus, sites, bins, channels, kits); all rows or none, errors name
  // lines. Changes of skus, sites and bins are appended to the feed of every node they concern;
  // a new site, or one whose kind changed, also gets its effective selling-rights policy right
  // after its Site entry; channels and kits are central-only.
  virtual absl::StatusOr<int64_t> Import(const std::string& kind, const std::string& csv) = 0;

  // Network stock by SKU across sites, or by site (or both).
  virtual absl::StatusOr<v1::NetworkStockResponse> NetworkStock(const std::string& sku,
                                                                const std::string& site) = 0;
  virtual absl::StatusOr<SiteMirror> Mirror(const std::string& site) = 0;

  // Cycle-count results the nodes posted (Event.count, stored by ApplyEvents in the same
  // transaction): inventory accuracy per site (share of count lines within tolerance) over lines
  // posted in [from_ms, to_ms) (0 = open end), for one site or all (site empty), plus the total.
  // Unimplemented in backends without it.
  virtual absl::StatusOr<v1::InventoryAccuracyResponse> InventoryAccuracy(
      const std::string& /*site*/, int64_t /*from_ms*/, int64_t /*to_ms*/) {
    return absl::UnimplementedError("inventory accuracy is not stored by this backend");
  }

  // The order and selling-rights side of the same store (same database and transactions), or
  // nullptr when this backend (or decorator) has none.
  virtual OrderStore* orders() { return nullptr; }
  // Purchase orders (central/purchase_orders.h) on the same database, or nullptr.
  virtual PoStore* purchase_orders() { return nullptr; }
};

}  // namespace depot::central
