#include "common/order_state.h"

#include "absl/strings/str_cat.h"

namespace depot::orders {

int Rank(v1::FulfilmentStatus s) {
  switch (s) {
    case v1::FULFILMENT_RELEASED: return 1;
    case v1::FULFILMENT_ACCEPTED: return 2;
    case v1::FULFILMENT_PICKING: return 3;
    case v1::FULFILMENT_PICKED: return 4;
    case v1::FULFILMENT_PACKED: return 5;
    case v1::FULFILMENT_SHIPPED: return 6;
    case v1::FULFILMENT_DELIVERED: return 7;
    default: return 0;
  }
}

bool IsFinal(v1::FulfilmentStatus s) {
  return s == v1::FULFILMENT_SHIPPED || s == v1::FULFILMENT_DELIVERED ||
         s == v1::FULFILMENT_CANCELLED;
}

const char* StatusName(v1::FulfilmentStatus s) {
  switch (s) {
    case v1::FULFILMENT_RELEASED: return "released";
    case v1::FULFILMENT_ACCEPTED: return "accepted";
    case v1::FULFILMENT_PICKING: return "picking";
    case v1::FULFILMENT_PICKED: return "picked";
    case v1::FULFILMENT_PACKED: return "packed";
    case v1::FULFILMENT_SHIPPED: return "shipped";
    case v1::FULFILMENT_DELIVERED: return "delivered";
    case v1::FULFILMENT_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

const char* OrderStatusName(v1::OrderStatus s) {
  switch (s) {
    case v1::ORDER_ON_HOLD: return "on_hold";
    case v1::ORDER_REJECTED: return "rejected";
    case v1::ORDER_BACKORDERED: return "backordered";
    case v1::ORDER_RELEASED: return "released";
    case v1::ORDER_IN_FULFILMENT: return "in_fulfilment";
    case v1::ORDER_PARTIALLY_SHIPPED: return "partially_shipped";
    case v1::ORDER_SHIPPED: return "shipped";
    case v1::ORDER_DELIVERED: return "delivered";
    case v1::ORDER_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

const char* NodeActionName(NodeAction a) {
  switch (a) {
    case NodeAction::kAccept: return "accept";
    case NodeAction::kPick: return "pick";
    case NodeAction::kPickDone: return "finish picking";
    case NodeAction::kPack: return "pack";
    case NodeAction::kShip: return "ship";
    case NodeAction::kCancel: return "cancel";
  }
  return "?";
}

absl::StatusOr<v1::FulfilmentStatus> NodeTransition(v1::FulfilmentStatus from, NodeAction a) {
  using S = v1::FulfilmentStatus;
  auto refuse = [&](const char* hint) -> absl::StatusOr<S> {
    return absl::FailedPreconditionError(absl::StrCat("cannot ", NodeActionName(a),
                                                      ": fulfilment is ", StatusName(from), hint));
  };
  switch (a) {
    case NodeAction::kAccept:
      if (from == v1::FULFILMENT_RELEASED) return v1::FULFILMENT_ACCEPTED;
      return refuse("");
    case NodeAction::kPick:
    case NodeAction::kPickDone:
      if (from == v1::FULFILMENT_ACCEPTED || from == v1::FULFILMENT_PICKING) {
        return a == NodeAction::kPick ? v1::FULFILMENT_PICKING : v1::FULFILMENT_PICKED;
      }
      if (from == v1::FULFILMENT_PICKED) return refuse(", everything is picked already");
      return refuse("");
    case NodeAction::kPack:
      if (from == v1::FULFILMENT_PICKED) return v1::FULFILMENT_PACKED;
      if (from == v1::FULFILMENT_ACCEPTED || from == v1::FULFILMENT_PICKING) {
        return refuse(", pick every line (or short it) first");
      }
      return refuse("");
    case NodeAction::kShip:
      if (from == v1::FULFILMENT_PACKED) return v1::FULFILMENT_SHIPPED;
      if (from == v1::FULFILMENT_PICKED) return refuse(", pack it first");
      if (Rank(from) >= 1 && Rank(from) < Rank(v1::FULFILMENT_PICKED)) {
        return refuse(", pick and pack it first");
      }
      return refuse("");
    case NodeAction::kCancel:
      if (Rank(from) >= 1 && Rank(from) < Rank(v1::FULFILMENT_SHIPPED)) {
        return v1::FULFILMENT_CANCELLED;
      }
      return refuse("");
  }
  return refuse("");
}

absl::Status CheckShortPick(v1::FulfilmentStatus from) {
  if (from == v1::FULFILMENT_ACCEPTED || from == v1::FULFILMENT_PICKING) return absl::OkStatus();
  const bool done = Rank(from) > Rank(v1::FULFILMENT_PICKING);
  return absl::FailedPreconditionError(
      absl::StrCat("cannot short-pick: fulfilment is ", StatusName(from),
                   done ? ", every line is picked or shorted already" : ""));
}

CancelDecision DecideCancel(v1::FulfilmentStatus current) {
  if (current == v1::FULFILMENT_CANCELLED) return CancelDecision::kAlreadyCancelled;
  if (Rank(current) >= Rank(v1::FULFILMENT_SHIPPED)) return CancelDecision::kRefuseShipped;
  return CancelDecision::kCancel;
}

MergeOutcome MergeNodeUpdate(const CentralView& current, const v1::FulfilmentUpdate& update) {
  MergeOutcome out;
  out.status = current.status;
  const v1::FulfilmentStatus reported = update.status();
  int64_t short_total = 0;
  for (const auto& l : update.lines()) short_total += l.short_quantity();

  if (update.change() == "cancel_refused") {
    // The node had shipped when our request came: the order stays shipped.
    if (current.cancel_requested) out.exceptions.push_back("cancel_after_ship");
  }
  if (current.status == v1::FULFILMENT_CANCELLED) {
    // Only the node cancels a released fulfilment, and it never un-cancels: nothing can follow.
    if (reported != v1::FULFILMENT_CANCELLED) out.exceptions.push_back("conflict");
    return out;
  }
  if (reported == v1::FULFILMENT_CANCELLED) {
    if (Rank(current.status) >= Rank(v1::FULFILMENT_SHIPPED)) {
      out.exceptions.push_back("conflict");  // shipped wins
      return out;
    }
  } else if (Rank(reported) < Rank(current.status)) {
    // Older than what central has (central's DELIVERED, or a replay): keep central's view.
    return out;
  }
  out.status = reported;
  out.take_lines = true;
  // Any taken update may carry new short units, a cancelled one too: a node that shorts the last
  // open units of a fulfilment with nothing picked cancels it in the same change ("short").
  if (short_total > current.short_total) {
    out.newly_short = short_total - current.short_total;
    out.exceptions.push_back("short_pick");
  }
  return out;
}

CentralCancel CentralCancelAction(v1::FulfilmentStatus current) {
  if (current == v1::FULFILMENT_CANCELLED) return CentralCancel::kNothingToDo;
  if (Rank(current) >= Rank(v1::FULFILMENT_SHIPPED)) return CentralCancel::kTooLate;
  return CentralCancel::kAsk;
}

CentralCancel CentralCancelAction(const CentralView& view) {
  const CentralCancel by_status = CentralCancelAction(view.status);
  if (by_status == CentralCancel::kAsk && view.cancel_requested) return CentralCancel::kNothingToDo;
  return by_status;
}

absl::Status CheckDelivery(v1::FulfilmentStatus current) {
  if (current == v1::FULFILMENT_SHIPPED || current == v1::FULFILMENT_DELIVERED) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("cannot confirm delivery: fulfilment is ", StatusName(current),
                   ", not shipped"));
}

v1::OrderStatus DeriveOrderStatus(const OrderFacts& f) {
  if (f.rejected) return v1::ORDER_REJECTED;
  if (f.on_hold) return v1::ORDER_ON_HOLD;
  if (f.ordered > 0 && f.shipped == 0 && f.cancelled >= f.ordered) return v1::ORDER_CANCELLED;
  // DELIVERED needs a carrier confirmation for every fulfilment that shipped, so at least one.
  bool any_live = false, any_working = false, any_delivered = false, all_delivered = true;
  for (auto s : f.fulfilments) {
    if (s == v1::FULFILMENT_CANCELLED) continue;
    if (s == v1::FULFILMENT_DELIVERED) any_delivered = true;
    if (s != v1::FULFILMENT_DELIVERED) all_delivered = false;
    if (!IsFinal(s)) any_live = true;
    if (s == v1::FULFILMENT_PICKING || s == v1::FULFILMENT_PICKED || s == v1::FULFILMENT_PACKED) {
      any_working = true;
    }
  }
  if (f.shipped > 0 && f.shipped + f.cancelled >= f.ordered && !any_live) {
    return any_delivered && all_delivered ? v1::ORDER_DELIVERED : v1::ORDER_SHIPPED;
  }
  if (f.shipped > 0) return v1::ORDER_PARTIALLY_SHIPPED;
  if (any_working) return v1::ORDER_IN_FULFILMENT;
  if (any_live) return v1::ORDER_RELEASED;
  return v1::ORDER_BACKORDERED;
}

}  // namespace depot::orders
