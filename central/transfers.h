// Transfers between sites at central (docs/OPERATIONS.md "Transfers between sites",
// proto/depot/v1/transfers.proto).
//
// Central orders transfers (TransferService::Create: sent to the source in its feed), learns
// every change from the nodes (Event.transfer: the whole transfer, newer version wins), forwards
// a shipped transfer to its destination's feed, shows what is in transit, and raises exceptions
// when the destination counted a different quantity than shipped ("transfer_short",
// "transfer_over", one per line, naming the transfer, the line and the difference).
//
// Selling rights (docs/SYNC.md "Transfers and selling rights"): a transfer central orders needs
// central's available rights at the source for every line (else FailedPrecondition naming what
// is available) and commits them like a released fulfilment (history "allocate"). When the
// source ships, the shipped units consume the rights ("ship") and unshipped ones go back to the
// node as unassigned ("short_return"); a cancel drops the commitment and the rights stay with
// central ("cancel"). A transfer ordered at the source uses the source's local rights only.
//
// The rules run inside the caller's write transaction (OrderTx) and write their feed entries,
// history rows and exceptions there; none of them fails the sync stream.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "central/order_store.h"
#include "central/store.h"
#include "common/clock.h"
#include "depot/v1/transfers.pb.h"

namespace depot::central::transfers {

// Applies one Event.transfer of `node` (inside ApplyEvents). Ignored (exception
// "transfer_conflict") when the node is neither source nor destination; an older or equal
// version than the stored one is ignored silently.
void ApplyTransferEvent(OrderTx& tx, const std::string& node, const v1::Event& event,
                        int64_t at_ms);

}  // namespace depot::central::transfers

namespace depot::central {

struct TransferServiceOptions {
  // false: central orders transfers without checking or committing its selling rights (the
  // naive baseline of OrderServiceOptions.selling_rights).
  bool selling_rights = true;
};

// The operations behind /v1/transfers and /v1/in-transit at central. Thread-safe.
class TransferService {
 public:
  // store must have an OrderStore; store and clock outlive this. feed_changed is called after a
  // commit that appended feed entries.
  TransferService(CentralStore* store, const Clock* clock, std::function<void()> feed_changed,
                  TransferServiceOptions options = {});

  // Orders a transfer: InvalidArgument (missing or equal sites, no lines, quantity <= 0, a SKU
  // twice), NotFound (unknown site or SKU), FailedPrecondition (central's available rights at the
  // source below a line's quantity). A request_id seen before returns the transfer it created
  // (second = true: replayed).
  absl::StatusOr<std::pair<v1::Transfer, bool>> Create(const v1::CreateTransferRequest& request,
                                                       const std::string& operator_id);
  // Newest first; limit 0 = 100, at most 1000 (InvalidArgument above).
  absl::StatusOr<v1::ListTransfersResponse> List(const v1::ListTransfersRequest& request);
  absl::StatusOr<v1::Transfer> Get(const std::string& transfer_id);
  // Units shipped and not yet received, per (SKU, destination) and per SKU; filtered by SKU and
  // destination site (empty = all).
  absl::StatusOr<v1::InTransitResponse> InTransit(const std::string& sku,
                                                  const std::string& site);

 private:
  CentralStore* store_;
  OrderStore* orders_;
  const Clock* clock_;
  HybridLogicalClock hlc_;
  std::function<void()> feed_changed_;
  TransferServiceOptions options_;
};

}  // namespace depot::central
