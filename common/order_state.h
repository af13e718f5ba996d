// The order state machine and its merge rules: the ONE place both sides consult (docs/ORDERS.md).
//
// Ownership (SYNC.md): central owns an order until a part of it (a fulfilment) is released to a
// site; from then on the node owns that fulfilment's state and central follows the node's
// FulfilmentUpdate events, which arrive exactly once and in the node's order. Central may only
// *ask* for a cancellation (FulfilmentCancel in the feed); the node decides with DecideCancel.
// Central adds one fact of its own after shipping: delivery (or a failed delivery) from the carrier.
//
// Merge rules (MergeNodeUpdate), never last-write-wins:
// - progress only moves forward (Rank); an update that would move central's view back is
//   ignored (it cannot happen with in-order delivery, but a restored node could replay one);
// - DELIVERED is central's and survives any node update;
// - a node CANCELLED after central saw SHIPPED is refused: shipped wins and an exception says so;
// - "cancel_refused" while central asked to cancel raises cancel_after_ship;
// - more short units than before raise short_pick (and the difference is re-routed by central),
//   whatever the update's status, CANCELLED included (shorting everything cancels at the node).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "depot/v1/orders.pb.h"

namespace depot::orders {

// Progress rank: RELEASED 1 ... DELIVERED 7. CANCELLED ranks 0 (it is a different branch).
int Rank(v1::FulfilmentStatus s);
bool IsFinal(v1::FulfilmentStatus s);      // SHIPPED, DELIVERED or CANCELLED
const char* StatusName(v1::FulfilmentStatus s);  // "released", "picked", ...
const char* OrderStatusName(v1::OrderStatus s);

// What a node can do to a fulfilment it owns.
enum class NodeAction {
  kAccept,       // reserve on release
  kPick,         // some units picked, more to pick
  kPickDone,     // the last unit picked or shorted ("finish picking")
  kPack,
  kShip,         // also the hand-out of click-and-collect
  kCancel,       // on central's request (see DecideCancel) or a local cancel
};
const char* NodeActionName(NodeAction a);

// The new status after a node action, or FailedPrecondition naming the current status and the
// action (e.g. "cannot ship: fulfilment is picked, pack it first").
absl::StatusOr<v1::FulfilmentStatus> NodeTransition(v1::FulfilmentStatus from, NodeAction a);

// A short pick (units not available here, handed back to central for re-routing; reported with
// change "short") is allowed while the fulfilment is ACCEPTED or PICKING, otherwise
// FailedPrecondition ("cannot short-pick: fulfilment is packed, ..."). When it closes the last
// open units, the same change finishes picking (kPickDone) or, with nothing picked, cancels.
absl::Status CheckShortPick(v1::FulfilmentStatus from);

// The node's answer to central's cancel request: cancel when not shipped yet (stock is released,
// picked goods go back to a bin), otherwise refuse ("cancel_refused": the order stays shipped).
enum class CancelDecision { kCancel, kAlreadyCancelled, kRefuseShipped };
CancelDecision DecideCancel(v1::FulfilmentStatus current);

// Central's view of one fulfilment.
struct CentralView {
  v1::FulfilmentStatus status = v1::FULFILMENT_RELEASED;
  bool cancel_requested = false;
  int64_t short_total = 0;  // sum of short_quantity central has seen so far
};

struct MergeOutcome {
  v1::FulfilmentStatus status;       // central's new view
  bool take_lines = false;           // copy the update's lines, packages, carrier, tracking
  int64_t newly_short = 0;           // units to hand back to routing
  std::vector<std::string> exceptions;  // kinds to raise: short_pick, cancel_after_ship, conflict
};
MergeOutcome MergeNodeUpdate(const CentralView& current, const v1::FulfilmentUpdate& update);

// Central's own transitions.
enum class CentralCancel {
  kNothingToDo,   // already cancelled (or, for the CentralView overload, already asked)
  kAsk,           // released: send FulfilmentCancel, mark cancel_requested
  kTooLate,       // shipped or delivered: refuse (the return flow handles it)
};
CentralCancel CentralCancelAction(v1::FulfilmentStatus current);
// The same, taking the outstanding request into account: ask at most once per fulfilment (one
// request, one answer, at most one cancel_after_ship). Prefer this overload.
CentralCancel CentralCancelAction(const CentralView& view);
// Delivery confirmation is valid only after SHIPPED (DELIVERED again is a no-op).
absl::Status CheckDelivery(v1::FulfilmentStatus current);

// The order's status from its parts. Lines carry quantity, shipped and cancelled; the fulfilments
// their status and line quantities. open_units = units not in a live fulfilment, not shipped and
// not cancelled (waiting for routing).
struct OrderFacts {
  bool on_hold = false;
  bool rejected = false;
  int64_t ordered = 0, shipped = 0, cancelled = 0, open_units = 0;
  std::vector<v1::FulfilmentStatus> fulfilments;
};
v1::OrderStatus DeriveOrderStatus(const OrderFacts& facts);

}  // namespace depot::orders
