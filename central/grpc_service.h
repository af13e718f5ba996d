// depot-central's network doors onto its engines: the operations of service Central as plain calls
// (CentralService, shared by the gRPC service and the HTTP API so one operation has one code
// path) and the gRPC server that carries service NodeSync (the node <-> central stream, see
// docs/SYNC.md), service Central, service Orders (central/orders.h) and service Rights
// (central/central_rights.h).
//
// gRPC is an implementation detail of grpc_service.cc and is not included by this header.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "central/central_sync.h"
#include "central/store.h"
#include "common/clock.h"
#include "depot/v1/central.pb.h"

namespace depot::central {

class OrderService;
class RightsService;

// The Central API (proto/depot/v1/central.proto) over the store and the sync engine.
// Thread-safe. Errors: InvalidArgument for bad requests; otherwise the store's status.
class CentralService {
 public:
  // All pointers must outlive this object.
  CentralService(CentralStore* store, CentralSyncEngine* engine, const Clock* clock);

  // Wires the order service (optional; without it the Orders service and the order parts of the
  // HTTP API answer UNIMPLEMENTED). Call before the servers start. orders must outlive this.
  void AttachOrders(OrderService* orders) { orders_ = orders; }
  OrderService* orders() const { return orders_; }
  // Wires the selling-rights operations (central/central_rights.h) the same way: without them
  // service Rights is not registered and /v1/rights, /v1/listings answer UNIMPLEMENTED.
  void AttachRights(RightsService* rights) { rights_ = rights; }
  RightsService* rights() const { return rights_; }

  // kind must be skus, sites, bins, channels or kits; all rows or none. Slow for big files: call
  // it off I/O threads.
  absl::StatusOr<v1::ImportResult> Import(const v1::ImportRequest& request);
  // At least one of sku and site.
  absl::StatusOr<v1::NetworkStockResponse> GetNetworkStock(const v1::NetworkStockRequest& request);
  // Registered nodes (the store) merged with the live sessions (the engine): connected,
  // last_seen_ms and reported_outbox_depth come from the session; lag_ms is central's clock minus
  // the HLC time of the node's last applied event while it is connected, else 0.
  absl::StatusOr<v1::ListNodesResponse> ListNodes();
  // Every filter of the request; open ones only unless include_resolved.
  absl::StatusOr<v1::ListExceptionsResponse> ListExceptions(
      const v1::ListExceptionsRequest& request);
  // Assign: assignee required (InvalidArgument). Resolve: note required (InvalidArgument);
  // resolving twice (or assigning a resolved one) is FailedPrecondition; unknown id NotFound.
  absl::StatusOr<v1::ExceptionEntry> AssignException(const v1::ExceptionActionRequest& request);
  absl::StatusOr<v1::ExceptionEntry> ResolveException(const v1::ExceptionActionRequest& request);
  // Channels and kits (central-only master data).
  absl::StatusOr<v1::ListChannelsResponse> ListChannels();

  // Feed change notification. Import (and anything else that appends to node feeds) bumps the
  // feed generation; open sync streams wait for a change instead of polling the store.
  // WaitForFeedChange blocks until the generation differs from *seen (then updates *seen and
  // returns true), or until `deadline` passes or *stop is true after a WakeFeedWaiters() call
  // (then returns false). Set *stop before calling WakeFeedWaiters().
  void FeedChanged();
  bool WaitForFeedChange(uint64_t* seen, std::chrono::steady_clock::time_point deadline,
                         const std::atomic<bool>* stop);
  uint64_t feed_generation() const;
  void WakeFeedWaiters();

  // Live counters for /metrics. events_applied counts events central applied (acknowledged) in
  // this process's lifetime; the transport adds to it.
  uint64_t events_applied() const { return events_applied_.load(std::memory_order_relaxed); }
  void AddEventsApplied(uint64_t n) { events_applied_.fetch_add(n, std::memory_order_relaxed); }
  int ConnectedNodes() const;

  CentralStore* store() const { return store_; }
  CentralSyncEngine* engine() const { return engine_; }
  const Clock* clock() const { return clock_; }

 private:
  CentralStore* store_;
  CentralSyncEngine* engine_;
  const Clock* clock_;
  OrderService* orders_ = nullptr;
  RightsService* rights_ = nullptr;
  std::atomic<uint64_t> events_applied_{0};
  mutable std::mutex feed_mu_;
  std::condition_variable feed_cv_;
  uint64_t feed_generation_ = 0;  // guarded by feed_mu_
};

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                      // 0 = pick a free one; see GrpcServer::port()
  int64_t feed_poll_ms = 1000;            // pump the feed at least this often (and at once
                                          // after CentralService::FeedChanged())
  int64_t heartbeat_every_ms = 1000;      // send a heartbeat when nothing was sent this long
  int64_t idle_timeout_ms = 30000;        // close a stream that sent nothing this long
};

// The running gRPC server: services NodeSync, Central, (when CentralService has an order
// service) Orders and (when it has the rights operations) Rights, the standard health service
// (grpc.health.v1, serving) and server reflection. Order and rights writes record the operator
// from the call's "x-depot-operator" metadata when present.
//
// NodeSync.Sync: the first message must be a Hello (else INVALID_ARGUMENT); a refusal by the
// engine ends the RPC with the engine's status (NOT_FOUND, FAILED_PRECONDITION, ...). After that
// each message goes to the engine and its answers are written in the order the engine produced
// them; the feed is pumped as soon as CentralService reports a feed change and at least every
// feed_poll_ms; a heartbeat goes out when nothing was written for heartbeat_every_ms. An engine
// error ends the RPC with that status. On any end the session is closed. absl status codes map
// 1:1 to gRPC codes.
//
// Thread-safe. Stop() (or destruction) cancels open streams and waits for handlers.
class GrpcServer {
 public:
  // Binds and starts. Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           CentralService* service);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  uint16_t port() const;
  // Stops accepting, ends open streams (within about a second) and waits for running handlers.
  // Idempotent.
  void Stop();

  class Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::central
