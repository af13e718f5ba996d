// The storage seam of the order service (central/orders.*) and of central's selling rights
// (central/central_rights.*): channels, kits, orders, their fulfilments, the exception list's
// order fields, and central's rights book per (site, SKU) with its history and the sites' split
// policies. The order logic (capture, review, routing, release, merging node updates, cancel,
// delivery) lives in central/orders.cc and the rights rules in central/central_rights.cc; both run
// against OrderTx, one open write transaction. The SQLite store (central/sqlite_store.cc)
// implements both interfaces over the same database as CentralStore, so an order change, its
// rights commitments, its feed entries and its exceptions commit together, and node updates and
// rights events merge in the same transaction as the event mark.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "central/routing.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/orders.pb.h"
#include "depot/v1/returns.pb.h"
#include "depot/v1/serials.pb.h"
#include "depot/v1/sync.pb.h"
#include "depot/v1/transfers.pb.h"

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

// Central's rights book for one (site, SKU): the `rights` row (docs/SYNC.md "Selling rights",
// rights.proto CentralRights). Conservation: central_rights == granted_total - released_total -
// returned_total - consumed_total - written_off_total.
struct RightsRow {
  std::string site;
  std::string sku;
  int64_t central_rights = 0;     // granted and received, not released, consumed or written off
  int64_t central_committed = 0;  // allocated to open fulfilments
  int64_t granted_total = 0;
  int64_t released_total = 0;         // back to the node: answers and planner releases
  int64_t returned_total = 0;         // short units: back to the node as unassigned
  int64_t consumed_total = 0;         // shipped
  int64_t written_off_total = 0;      // after a loss
  uint64_t grant_seq = 0;             // last grant seq applied
  uint64_t release_seq = 0;           // last release seq sent
  int64_t request_pending_units = 0;  // central asked the node (FeedEntry.rights_request) ...
  int64_t request_at_ms = 0;          // ... at this time; 0 = no request waiting

  int64_t Available() const { return central_rights - central_committed; }
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
  // Central's rights and commitments of one SKU, by site (sites without a rights row are
  // absent): what routing allocates against. Indexed lookup.
  virtual std::map<std::string, routing::SiteRights> RightsOf(const std::string& sku) = 0;
  // The mirror's sellable stock of one SKU by site: on hand (all lots) - reserved - safety stock
  // (sites without a mirror row are absent; may be negative). Indexed lookups.
  virtual std::map<std::string, int64_t> MirrorSellable(const std::string& sku) = 0;

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
  // indexes from the difference: fulfilment rows (site, status) and the re-routing queue:
  // needs_routing says whether the order has open units the re-routing pass should retry.
  virtual void SaveOrder(const v1::Order& order, const v1::Order* before, uint64_t fingerprint,
                         bool needs_routing) = 0;
  // Appends to the site's feed (seq assigned here, gap-free per site).
  virtual void AppendFeed(const std::string& site, v1::FeedEntry entry) = 0;
  // A new exception entry (kind, node_id, message, at_ms, order_id, fulfilment_id, sku).
  virtual void AddException(const v1::ExceptionEntry& entry) = 0;
  // (order_id, fulfilment_id) of the fulfilments at `site` that are not shipped, delivered or
  // cancelled and have a line of `sku`, by order id. Reads order bodies: for rare events only.
  virtual std::vector<std::pair<std::string, std::string>> OpenFulfilmentsWith(
      const std::string& site, const std::string& sku) = 0;

  // Selling rights (the rules are central/central_rights.h).
  // The (site, sku) row; all counters 0 (site and sku set) when there is none yet.
  virtual RightsRow LoadRights(const std::string& site, const std::string& sku) = 0;
  // Inserts or replaces the row. node_book: the node's book from its latest rights event, or
  // nullptr to keep the stored one.
  virtual void SaveRights(const RightsRow& row, const v1::RightsBook* node_book) = 0;
  // Appends a history row (its id is assigned here).
  virtual void AddRightsHistory(const v1::RightsHistoryEntry& entry) = 0;
  // The site's explicitly set policy, if any (defaults are derived, not stored).
  virtual std::optional<v1::RightsPolicy> ExplicitPolicy(const std::string& site) = 0;
  // Stores an explicit policy for policy.site with version = the previous explicit version + 1
  // (1 for the first); returns it as stored.
  virtual v1::RightsPolicy SavePolicy(const v1::RightsPolicy& policy) = 0;

  // Transfers between sites (the rules are central/transfers.h). A backend without them throws.
  virtual std::optional<v1::Transfer> LoadTransfer(const std::string& /*transfer_id*/) {
    throw std::logic_error("transfers are not stored by this backend");
  }
  // The transfer central created for this client request_id, if any.
  virtual std::optional<v1::Transfer> TransferByRequest(const std::string& /*request_id*/) {
    throw std::logic_error("transfers are not stored by this backend");
  }
  // 1, 2, 3, ... for the transfers central orders (gap-free unless the transaction rolls back).
  virtual uint64_t NextTransferNumber() {
    throw std::logic_error("transfers are not stored by this backend");
  }
  // Inserts or replaces the transfer (request_id is kept from the first insert).
  virtual void SaveTransfer(const v1::Transfer& /*transfer*/, const std::string& /*request_id*/) {
    throw std::logic_error("transfers are not stored by this backend");
  }

  // Returns (the rules are central/returns.h). A backend without them throws.
  // 1, 2, 3, ... for central's RMAs (gap-free unless the transaction rolls back).
  virtual uint64_t NextReturnNumber() {
    throw std::logic_error("returns are not stored by this backend");
  }
  virtual std::optional<v1::Return> LoadReturn(const std::string& /*return_id*/) {
    throw std::logic_error("returns are not stored by this backend");
  }
  // Inserts or replaces the return (RMAs and counter returns).
  virtual void SaveReturn(const v1::Return& /*ret*/) {
    throw std::logic_error("returns are not stored by this backend");
  }
  // Returns filtered by order, site and status (empty / unspecified = all), newest first, at
  // most limit (0 = no limit). Indexed by order.
  virtual std::vector<v1::Return> FindReturns(const std::string& /*order_id*/,
                                              const std::string& /*site*/,
                                              v1::ReturnStatus /*status*/, uint32_t /*limit*/) {
    throw std::logic_error("returns are not stored by this backend");
  }
  // Serials a site shipped against a reference (fulfilment id), for the returns' serial check.
  virtual void AddShippedSerial(const std::string& /*site*/, const std::string& /*reference*/,
                                const std::string& /*sku*/, const std::string& /*serial*/) {
    throw std::logic_error("returns are not stored by this backend");
  }
  virtual std::vector<std::string> ShippedSerials(const std::string& /*site*/,
                                                  const std::string& /*reference*/,
                                                  const std::string& /*sku*/) {
    throw std::logic_error("returns are not stored by this backend");
  }

  // Central's serial registry (the rules are central/serials.h). A backend without it throws.
  virtual std::optional<v1::SerialRecord> LoadSerial(const std::string& /*sku*/,
                                                     const std::string& /*serial*/) {
    throw std::logic_error("serials are not stored by this backend");
  }
  // Inserts or replaces the (sku, serial) row.
  virtual void SaveSerial(const v1::SerialRecord& /*record*/) {
    throw std::logic_error("serials are not stored by this backend");
  }
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

  // Selling rights, read from committed data (see central/central_rights.h for what they mean).
  // Rows filtered by site and/or SKU (empty = all), by (site, sku), with the node's last book.
  virtual absl::StatusOr<v1::ListRightsResponse> ListRights(const std::string& site,
                                                            const std::string& sku) = 0;
  // Newest first, at most limit (already validated), filtered like ListRights.
  virtual absl::StatusOr<v1::RightsHistoryResponse> RightsHistory(const std::string& site,
                                                                  const std::string& sku,
                                                                  uint32_t limit) = 0;
  // The effective policy of every site, by site id (explicit, else the default of its kind).
  virtual absl::StatusOr<v1::ListPoliciesResponse> ListPolicies() = 0;
  // For every SKU of the master data: central's available rights (central_rights -
  // central_committed, each site's floored at 0) summed over `sites` (empty = every site).
  virtual absl::StatusOr<std::map<std::string, int64_t>> AvailableBySku(
      const std::vector<std::string>& sites) = 0;
  // Recomputes, in one snapshot, per (site, SKU): central_rights == granted - released -
  // returned - consumed - written_off; central_committed == the open units (quantity - shipped -
  // short) of that SKU in the site's open central fulfilments (not shipped, delivered or
  // cancelled; node-local orders excluded); 0 <= central_committed <= central_rights; no counter
  // negative. Returns one sentence per violation (empty = all hold).
  virtual absl::StatusOr<std::vector<std::string>> VerifyRights() = 0;

  // Transfers between sites, newest first: filtered by status (unspecified = all) and site (source
  // or destination; empty = all), at most limit (0 = no limit). Unimplemented in backends
  // without them.
  virtual absl::StatusOr<std::vector<v1::Transfer>> ListTransfers(v1::TransferStatus /*status*/,
                                                                  const std::string& /*site*/,
                                                                  uint32_t /*limit*/) {
    return absl::UnimplementedError("transfers are not stored by this backend");
  }
  // NotFound for an unknown id.
  virtual absl::StatusOr<v1::Transfer> GetTransfer(const std::string& /*transfer_id*/) {
    return absl::UnimplementedError("transfers are not stored by this backend");
  }

  // Central's serial registry (central/serials.h): NotFound for a serial it never saw.
  // Unimplemented in backends without it.
  virtual absl::StatusOr<v1::SerialRecord> GetSerial(const std::string& /*sku*/,
                                                     const std::string& /*serial*/) {
    return absl::UnimplementedError("serials are not stored by this backend");
  }

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
