// The storage seam of the order service (central/orders.*): channels, kits, orders, their
// fulfilments, and the exception list's order fields. The order logic (capture, review, routing,
// release, merging node updates, cancel, delivery) lives in central/orders.cc and runs against
// OrderTx, one open write transaction; the SQLite store (central/sqlite_store.cc) implements both
// interfaces over the same database as CentralStore, so an order change, its feed entries and its
// exceptions commit together, and node updates merge in the same transaction as the event mark.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "central/routing.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/orders.pb.h"
#include "depot/v1/sync.pb.h"

namespace depot::central {

// What the KPI report needs of an order (per channel) and of each fulfilment (per site), kept
// beside them by SaveOrder so the report never parses orders. The numbers are computed by the
// order logic (KpiFactsOf in central/orders.h); the store only persists and scans them.
struct OrderKpiFacts {
  std::string channel;
  int64_t captured_ms = 0;
  int64_t shipped_ms = 0;  // 0 = not (completely) shipped
  int64_t units_requested = 0;
  int64_t units_shipped = 0;
};
struct FulfilmentKpiFacts {
  std::string site;
  int64_t captured_ms = 0;  // the order's
  int64_t shipped_ms = 0;   // 0 = not shipped
  int64_t units_requested = 0;
  int64_t units_shipped = 0;
};

// Reads and writes inside one open write transaction. Valid only during the callback it is handed
// to; not thread-safe. Methods throw (std::exception) on storage failure: the transaction's owner
// catches, rolls back and reports a Status, so exceptions never leave OrderStore / ApplyEvents.
class OrderTx {
 public:
  virtual ~OrderTx() = default;

  // Master data (may be cached by the implementation; consistent within the transaction).
  virtual std::optional<v1::Channel> FindChannel(const std::string& id) = 0;
  // The kit's components in CSV order; empty when sku is not a kit.
  virtual std::vector<v1::KitComponent> KitComponents(const std::string& sku) = 0;
  // The SKU's safety stock; nullopt when the SKU is unknown.
  virtual std::optional<int64_t> SafetyStock(const std::string& sku) = 0;
  // Every site, by id (valid until the transaction ends).
  virtual const std::vector<v1::Site>& Sites() = 0;
  // Mirror on hand, mirror reserved and units released-not-accepted of one SKU, by site (sites
  // with nothing are absent). Indexed lookups.
  virtual std::map<std::string, routing::StockFacts> StockOf(const std::string& sku) = 0;

  // Orders.
  // (order_id, request fingerprint) of the order captured for (channel, external_id).
  virtual std::optional<std::pair<std::string, uint64_t>> FindExternal(
      const std::string& channel, const std::string& external_id) = 0;
  // 1, 2, 3, ...: gap-free unless the transaction rolls back.
  virtual uint64_t NextOrderNumber() = 0;
  virtual std::optional<v1::Order> LoadOrder(const std::string& order_id) = 0;
  // The order a fulfilment belongs to.
  virtual std::optional<std::string> OrderOfFulfilment(const std::string& fulfilment_id) = 0;
  // Stores a new order (before == nullptr; fingerprint is kept for idempotency) or replaces one
  // (before = the order as loaded in this transaction). The implementation maintains its
  // indexes from the difference: fulfilment rows (site, status), units released-not-accepted per
  // (site, sku) (what StockOf reports as `released`), and the re-routing queue: needs_routing
  // says whether the order has open units the re-routing pass should retry.
  virtual void SaveOrder(const v1::Order& order, const v1::Order* before, uint64_t fingerprint,
                         bool needs_routing) = 0;
  // Appends to the site's feed (seq assigned here, gap-free per site).
  virtual void AppendFeed(const std::string& site, v1::FeedEntry entry) = 0;
  // A new exception entry (kind, node_id, message, at_ms, order_id, fulfilment_id, sku).
  virtual void AddException(const v1::ExceptionEntry& entry) = 0;
};

class OrderStore {
 public:
  virtual ~OrderStore() = default;

  using TxFn = std::function<absl::Status(OrderTx&)>;
  // Group commit: runs every op in its own savepoint inside one write transaction and commits
  // once. An op returning an error (or throwing) is rolled back alone; (*results)[i] is op i's
  // status. The returned status is the commit's: if it fails, every result is that error.
  virtual absl::Status RunBatch(const std::vector<TxFn*>& ops,
                                std::vector<absl::Status>* results) = 0;

  // Reads (from a snapshot of committed data; they never wait for a write transaction).
  // NotFound for an unknown order.
  virtual absl::StatusOr<v1::Order> GetOrder(const std::string& order_id) = 0;
  // Filters and pages as ListOrdersRequest says (limit already validated, 1..1000); orders come
  // with their history.
  virtual absl::StatusOr<v1::ListOrdersResponse> ListOrders(const v1::ListOrdersRequest& r) = 0;
  // Up to limit ids of orders queued for re-routing, after `after` in id order.
  virtual absl::StatusOr<std::vector<std::string>> OrdersToRoute(const std::string& after,
                                                                 uint32_t limit) = 0;
  // Calls on_order for every order and on_fulfilment for every fulfilment of an order captured
  // in [from_ms, to_ms) (to_ms 0 = unbounded), in one snapshot.
  virtual absl::Status ScanKpiFacts(
      int64_t from_ms, int64_t to_ms, const std::function<void(const OrderKpiFacts&)>& on_order,
      const std::function<void(const FulfilmentKpiFacts&)>& on_fulfilment) = 0;

  virtual absl::StatusOr<v1::ListChannelsResponse> ListChannels() = 0;

  // Exceptions with every filter of ListExceptionsRequest (open ones only unless
  // include_resolved), newest first, at most 1000.
  virtual absl::StatusOr<v1::ListExceptionsResponse> QueryExceptions(
      const v1::ListExceptionsRequest& request) = 0;
  // NotFound for an unknown id; FailedPrecondition when already resolved.
  virtual absl::StatusOr<v1::ExceptionEntry> AssignException(uint64_t id,
                                                             const std::string& assignee) = 0;
  virtual absl::StatusOr<v1::ExceptionEntry> ResolveException(uint64_t id, const std::string& note,
                                                              int64_t at_ms) = 0;

  // Called after every committed batch of node events (stock or fulfilments may have changed),
  // outside the store's locks, on the applying thread. Set before events flow; may be empty.
  virtual void SetEventsAppliedListener(std::function<void()> listener) = 0;
};

}  // namespace depot::central
