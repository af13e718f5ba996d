// Central's order service (docs/ORDERS.md): capture, review, routing and release, cancellation,
// delivery, re-routing of open units, KPIs; and the merge of node fulfilment updates
// (ApplyNodeUpdate), which the store runs inside its ApplyEvents transaction.
//
// Routing allocates against central's selling rights per site (central/routing.h); releasing a
// fulfilment commits its units against them, and when units stay backordered central asks online
// sites that hold stock for rights (rights::AskNodes), the re-routing pass routing them later.
//
// Ownership (SYNC.md): central owns an order until a part of it (a fulfilment) is released to a
// site; the node owns that fulfilment's state afterwards. Central only asks for a cancellation
// (FulfilmentCancel in the site's feed) and follows the node's FulfilmentUpdate events with the
// merge rules of common/order_state.h. An order's status is always orders::DeriveOrderStatus of
// its parts.
//
// Line accounting (OrderLine): allocated = units in live (not cancelled) fulfilments, i.e. asked
// minus shorted while a fulfilment is open, the shipped units once it shipped; shipped = units of
// shipped or delivered fulfilments; cancelled = units the customer's cancellation took (open units
// at once, a fulfilment's units when the node confirms). Open = quantity - allocated - cancelled:
// units waiting for routing (backordered, shorted, or cancelled by a node on its own).
//
// Every write is one transaction through the store's group commit (OrderStore::RunBatch), run by
// one writer thread: concurrent requests share a commit. Nothing is written when a request fails.
//
// Thread-safe. Heavy headers (gRPC, JSON, SQLite) stay out of this header.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "central/store.h"
#include "common/clock.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/orders.pb.h"

namespace depot::central {

// Merges one node event carrying Event.fulfilment (FulfilmentUpdate) into central's order, inside
// the caller's transaction (the store's ApplyEvents). Follows orders::MergeNodeUpdate; stores the
// node's lines, packages, carrier and tracking; updates the order lines, shipped times (from the
// event's HLC) and history; raises the exceptions the merge names (short_pick per SKU, with
// stock_discrepancy when the short reason is not_found or damaged; cancel_after_ship; conflict).
// Newly short units become open and are queued for the re-routing pass, which excludes the site.
// For central's fulfilments the per-line deltas move central's selling rights in the same
// transaction (rights::ApplyFulfilmentChange: shipped consumes, short returns, a closed
// fulfilment drops its commitment). An update with local_kind creates the node-local order
// (channel "store", local_site = node) the first time; local orders never touch central's rights.
// An unknown fulfilment raises "unknown_fulfilment" and changes nothing else.
// Throws only on storage failure.
void ApplyNodeUpdate(OrderTx& tx, const std::string& node_id, const v1::Event& event);

// The KPI facts of an order and of one of its fulfilments (the rules of the report):
// per channel, units requested = ordered minus cancelled, shipped = units shipped, shipped_ms =
// when the last unit shipped; per site, units requested = units asked of the site except those
// of a fulfilment cancelled at the customer's request (its shorts still count), shipped = units
// the site shipped, shipped_ms = when the fulfilment shipped.
OrderKpiFacts KpiFactsOf(const v1::Order& order);
FulfilmentKpiFacts KpiFactsOf(const v1::Order& order, const v1::Fulfilment& fulfilment);

// Pure KPI arithmetic over the facts of the orders captured in the requested window. Per site:
// fulfilments that shipped, cycle time capture -> fulfilment shipped, fill rate = units shipped /
// units requested. Per channel: orders that shipped completely, cycle time capture -> order
// shipped, fill rate = shipped / (ordered - cancelled). Percentiles are nearest-rank.
class KpiAccumulator {
 public:
  void Add(const OrderKpiFacts& order);
  void Add(const FulfilmentKpiFacts& fulfilment);
  void Add(const v1::Order& order);  // the order and all its fulfilments
  v1::KpiResponse Result() const;

 private:
  struct Acc {
    int64_t requested = 0, shipped_units = 0;
    std::vector<double> cycle_s;
  };
  std::map<std::string, Acc> sites_, channels_;
};

struct OrderServiceOptions {
  // The re-routing pass runs this often and soon after node events were applied; 0 = no
  // background thread (tests call RunRoutingPass themselves).
  int64_t reroute_every_ms = 500;
  uint32_t reroute_batch = 200;  // orders per pass (bounded work)
  uint32_t max_batch = 256;      // operations per write transaction
  // Route against central's selling rights (docs/SYNC.md). false is the naive baseline the
  // simulation compares against: routing trusts central's mirror of each site's sellable stock
  // (a shared counter) and asks no node for rights.
  bool selling_rights = true;
};

class OrderService {
 public:
  // Which sites have an open, welcomed sync stream now (CentralSyncEngine::OnlineNodes).
  using OnlineSites = std::function<std::set<std::string>()>;
  // Called after a commit that appended feed entries (CentralService::FeedChanged wakes the
  // sessions so releases and cancel requests go out at once).
  using FeedChanged = std::function<void()>;

  // store must have an OrderStore (store->orders() != nullptr) and outlive this object, as must
  // clock. Registers itself as the store's events-applied listener.
  OrderService(CentralStore* store, const Clock* clock, OnlineSites online,
               FeedChanged feed_changed, OrderServiceOptions options = {});
  ~OrderService();  // stops the threads (queued requests still run)
  OrderService(const OrderService&) = delete;
  OrderService& operator=(const OrderService&) = delete;

  // Capture: InvalidArgument for a malformed request (no channel or external_id, no lines, a
  // line without SKU, quantity <= 0, price < 0, no ship-to country, negative fees); NotFound for
  // an unknown channel or SKU; AlreadyExists when (channel, external_id) was captured with other
  // content. The same content again returns the first order with replayed = true. Held for
  // review when worth more than the channel's review_above_cents (> 0) or when the ship-to
  // address fails the checks; otherwise routed and released at once.
  absl::StatusOr<v1::CaptureOrderResponse> Capture(const v1::CaptureOrderRequest& request,
                                                   const std::string& operator_id = "");
  // NotFound for an unknown order. Fulfilments, reasons and history included.
  absl::StatusOr<v1::Order> Get(const std::string& order_id);
  // Filters: status, channel, site (orders with a fulfilment there); paged by order_id (after,
  // limit 1..1000, default 100). Orders without history.
  absl::StatusOr<v1::ListOrdersResponse> List(const v1::ListOrdersRequest& request);
  // Open units are cancelled at once; an order on hold or backordered cancels completely;
  // released fulfilments not shipped are asked to cancel (FulfilmentCancel in the site's feed,
  // cancel_requested); the node's answer arrives as an update. FailedPrecondition when
  // everything shipped ("order already shipped; start a return") or the order was rejected.
  absl::StatusOr<v1::Order> Cancel(const v1::CancelOrderRequest& request,
                                   const std::string& operator_id = "");
  // Approve (routes it) or reject (ORDER_REJECTED) an order on hold; FailedPrecondition otherwise.
  absl::StatusOr<v1::Order> Review(const v1::ReviewOrderRequest& request,
                                   const std::string& operator_id = "");
  // Delivered (FULFILMENT_DELIVERED, delivered_ms) or failed (delivery_note, exception
  // failed_shipment; the fulfilment stays shipped). orders::CheckDelivery decides.
  absl::StatusOr<v1::Order> ConfirmDelivery(const v1::DeliveryRequest& request,
                                            const std::string& operator_id = "");
  absl::StatusOr<v1::KpiResponse> Kpis(const v1::KpiRequest& request);

  // Asynchronous forms of the writes for adapters that must not block (HTTP I/O threads): done
  // runs on the writer thread after the commit.
  void CaptureAsync(v1::CaptureOrderRequest request, std::string operator_id,
                    std::function<void(absl::StatusOr<v1::CaptureOrderResponse>)> done);
  void CancelAsync(v1::CancelOrderRequest request, std::string operator_id,
                   std::function<void(absl::StatusOr<v1::Order>)> done);
  void ReviewAsync(v1::ReviewOrderRequest request, std::string operator_id,
                   std::function<void(absl::StatusOr<v1::Order>)> done);
  void ConfirmDeliveryAsync(v1::DeliveryRequest request, std::string operator_id,
                            std::function<void(absl::StatusOr<v1::Order>)> done);

  // One re-routing pass: up to reroute_batch orders with open units (round robin over passes)
  // are routed again with fresh availability. Returns how many orders got new fulfilments or a
  // new routing note.
  absl::StatusOr<int> RunRoutingPass();
  // Asks the background thread for a pass soon (node events were applied, a site came online).
  void Kick();

 private:
  struct Op {
    OrderStore::TxFn fn;
    std::function<void(absl::Status)> done;
  };
  // Per-batch context handed to the operations (now, online sites, feed flag).
  struct Ctx {
    int64_t now_ms = 0;
    uint64_t hlc = 0;
    std::set<std::string> online;
    bool fed = false;
    bool naive = false;  // !options_.selling_rights
  };
  void Submit(std::function<absl::Status(OrderTx&, Ctx&)> fn,
              std::function<void(absl::Status)> done);
  absl::Status SubmitAndWait(std::function<absl::Status(OrderTx&, Ctx&)> fn);
  void WriterLoop();
  void RoutingLoop();

  CentralStore* store_;
  OrderStore* orders_;
  const Clock* clock_;
  HybridLogicalClock hlc_;
  OnlineSites online_;
  FeedChanged feed_changed_;
  const OrderServiceOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;
  bool stop_ = false;
  std::thread writer_;
  Ctx* ctx_ = nullptr;  // the running batch's context (writer thread only)

  std::mutex route_mu_;
  std::condition_variable route_cv_;
  bool kicked_ = false;
  bool route_stop_ = false;
  std::string route_cursor_;  // guarded by route_mu_ (RunRoutingPass may run on any thread)
  std::mutex pass_mu_;        // one pass at a time
  std::thread router_;
};

}  // namespace depot::central
