// The order state machine and its merge rules (common/order_state.h): table tests of every rule,
// and an exhaustive model check of node <-> central concurrency.
//
// The model: a node owning one fulfilment's status, central holding a CentralView, a FIFO channel
// of state-based FulfilmentUpdate node -> central and a FIFO channel of cancel requests central ->
// node. Its state space is finite and small, so it is explored whole: every state reachable from
// RELEASED by any interleaving of actions and deliveries. From each, every pair (central action,
// node action) runs in both orders with every choice of message deliveries before and between the
// two actions, then the system runs to quiescence and SYNC.md invariant 5 is checked. The same
// explorer run with deliberately wrong rules must find violations, so a green run means something.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/order_state.h"

namespace depot {
namespace {

using orders::CancelDecision;
using orders::CentralCancel;
using orders::CentralView;
using orders::MergeOutcome;
using orders::NodeAction;
using v1::FulfilmentStatus;

constexpr std::array<FulfilmentStatus, 9> kAllStatuses = {
    v1::FULFILMENT_STATUS_UNSPECIFIED, v1::FULFILMENT_RELEASED, v1::FULFILMENT_ACCEPTED,
    v1::FULFILMENT_PICKING,            v1::FULFILMENT_PICKED,   v1::FULFILMENT_PACKED,
    v1::FULFILMENT_SHIPPED,            v1::FULFILMENT_DELIVERED, v1::FULFILMENT_CANCELLED};
constexpr std::array<NodeAction, 6> kAllActions = {NodeAction::kAccept, NodeAction::kPick,
                                                   NodeAction::kPickDone, NodeAction::kPack,
                                                   NodeAction::kShip, NodeAction::kCancel};

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

v1::FulfilmentUpdate Update(FulfilmentStatus status, const std::string& change,
                            std::vector<int64_t> shorts = {}) {
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("o1-1");
  u.set_order_id("o1");
  u.set_status(status);
  u.set_change(change);
  uint32_t line_no = 1;
  for (int64_t s : shorts) {
    auto* l = u.add_lines();
    l->set_line_no(line_no++);
    l->set_sku("SKU-" + std::to_string(line_no));
    l->set_quantity(5);
    l->set_short_quantity(s);
  }
  return u;
}

CentralView View(FulfilmentStatus status, bool cancel_requested = false, int64_t short_total = 0) {
  CentralView v;
  v.status = status;
  v.cancel_requested = cancel_requested;
  v.short_total = short_total;
  return v;
}

// ------------------------------------------------------------------------------------------------
// 1. Node transitions: the whole table.

TEST_CASE("order state: names and ranks", "[order-state]") {
  std::set<std::string> names;
  for (auto s : kAllStatuses) names.insert(orders::StatusName(s));
  CHECK(names.size() == kAllStatuses.size());
  CHECK(std::string(orders::StatusName(v1::FULFILMENT_PICKED)) == "picked");

  std::set<std::string> action_names;
  for (auto a : kAllActions) action_names.insert(orders::NodeActionName(a));
  CHECK(action_names.size() == kAllActions.size());  // every action has its own name

  // Progress order RELEASED < ... < DELIVERED; CANCELLED and UNSPECIFIED are off that line.
  for (int i = 1; i + 1 <= 7; ++i) {
    CHECK(orders::Rank(kAllStatuses[i]) == i);
    CHECK(orders::Rank(kAllStatuses[i]) < orders::Rank(kAllStatuses[i + 1]));
  }
  CHECK(orders::Rank(v1::FULFILMENT_CANCELLED) == 0);
  CHECK(orders::Rank(v1::FULFILMENT_STATUS_UNSPECIFIED) == 0);

  for (auto s : kAllStatuses) {
    const bool final_expected = s == v1::FULFILMENT_SHIPPED || s == v1::FULFILMENT_DELIVERED ||
                                s == v1::FULFILMENT_CANCELLED;
    CHECK(orders::IsFinal(s) == final_expected);
  }

  std::set<std::string> order_names;
  for (int s = v1::OrderStatus_MIN; s <= v1::OrderStatus_MAX; ++s) {
    order_names.insert(orders::OrderStatusName(static_cast<v1::OrderStatus>(s)));
  }
  CHECK(order_names.size() == static_cast<size_t>(v1::OrderStatus_MAX - v1::OrderStatus_MIN + 1));
}

TEST_CASE("order state: NodeTransition for every (status, action) pair", "[order-state]") {
  // The documented machine: everything not listed here is refused.
  const std::map<std::pair<FulfilmentStatus, NodeAction>, FulfilmentStatus> allowed = {
      {{v1::FULFILMENT_RELEASED, NodeAction::kAccept}, v1::FULFILMENT_ACCEPTED},
      {{v1::FULFILMENT_ACCEPTED, NodeAction::kPick}, v1::FULFILMENT_PICKING},
      {{v1::FULFILMENT_PICKING, NodeAction::kPick}, v1::FULFILMENT_PICKING},
      {{v1::FULFILMENT_ACCEPTED, NodeAction::kPickDone}, v1::FULFILMENT_PICKED},
      {{v1::FULFILMENT_PICKING, NodeAction::kPickDone}, v1::FULFILMENT_PICKED},
      {{v1::FULFILMENT_PICKED, NodeAction::kPack}, v1::FULFILMENT_PACKED},
      {{v1::FULFILMENT_PACKED, NodeAction::kShip}, v1::FULFILMENT_SHIPPED},
      {{v1::FULFILMENT_RELEASED, NodeAction::kCancel}, v1::FULFILMENT_CANCELLED},
      {{v1::FULFILMENT_ACCEPTED, NodeAction::kCancel}, v1::FULFILMENT_CANCELLED},
      {{v1::FULFILMENT_PICKING, NodeAction::kCancel}, v1::FULFILMENT_CANCELLED},
      {{v1::FULFILMENT_PICKED, NodeAction::kCancel}, v1::FULFILMENT_CANCELLED},
      {{v1::FULFILMENT_PACKED, NodeAction::kCancel}, v1::FULFILMENT_CANCELLED},
  };
  int checked = 0, refused = 0;
  for (auto from : kAllStatuses) {
    for (auto a : kAllActions) {
      INFO("from " << orders::StatusName(from) << ", action " << orders::NodeActionName(a));
      const auto got = orders::NodeTransition(from, a);
      const auto it = allowed.find({from, a});
      if (it != allowed.end()) {
        REQUIRE(got.ok());
        CHECK(*got == it->second);
      } else {
        REQUIRE_FALSE(got.ok());
        CHECK(absl::IsFailedPrecondition(got.status()));
        const std::string msg(got.status().message());
        INFO("message: " << msg);
        CHECK(Contains(msg, std::string("cannot ") + orders::NodeActionName(a) + ":"));
        CHECK(Contains(msg, std::string("fulfilment is ") + orders::StatusName(from)));
        ++refused;
      }
      ++checked;
    }
  }
  CHECK(checked == 54);
  CHECK(refused == 54 - static_cast<int>(allowed.size()));

  // The messages tell the operator what to do next.
  auto msg = [](FulfilmentStatus from, NodeAction a) {
    return std::string(orders::NodeTransition(from, a).status().message());
  };
  CHECK(msg(v1::FULFILMENT_PICKED, NodeAction::kShip) ==
        "cannot ship: fulfilment is picked, pack it first");
  CHECK(msg(v1::FULFILMENT_ACCEPTED, NodeAction::kShip) ==
        "cannot ship: fulfilment is accepted, pick and pack it first");
  CHECK(msg(v1::FULFILMENT_PICKING, NodeAction::kPack) ==
        "cannot pack: fulfilment is picking, pick every line (or short it) first");
  CHECK(msg(v1::FULFILMENT_PICKED, NodeAction::kPickDone) ==
        "cannot finish picking: fulfilment is picked, everything is picked already");
  CHECK(msg(v1::FULFILMENT_SHIPPED, NodeAction::kCancel) == "cannot cancel: fulfilment is shipped");
  CHECK(msg(v1::FULFILMENT_CANCELLED, NodeAction::kShip) == "cannot ship: fulfilment is cancelled");
}

TEST_CASE("order state: short picks, cancel decisions, central's own transitions",
          "[order-state]") {
  for (auto s : kAllStatuses) {
    INFO("status " << orders::StatusName(s));
    const int r = orders::Rank(s);
    // Short pick: only while picking can still happen.
    const auto short_ok = orders::CheckShortPick(s);
    const bool short_expected = s == v1::FULFILMENT_ACCEPTED || s == v1::FULFILMENT_PICKING;
    CHECK(short_ok.ok() == short_expected);
    if (!short_ok.ok()) {
      CHECK(absl::IsFailedPrecondition(short_ok));
      CHECK(Contains(std::string(short_ok.message()), "cannot short-pick: fulfilment is " +
                                                          std::string(orders::StatusName(s))));
    }
    // The node's answer: cancel anything not shipped, refuse once shipped.
    const auto decision = orders::DecideCancel(s);
    if (s == v1::FULFILMENT_CANCELLED) {
      CHECK(decision == CancelDecision::kAlreadyCancelled);
    } else if (r >= orders::Rank(v1::FULFILMENT_SHIPPED)) {
      CHECK(decision == CancelDecision::kRefuseShipped);
    } else {
      CHECK(decision == CancelDecision::kCancel);
      if (r >= 1) CHECK(orders::NodeTransition(s, NodeAction::kCancel).ok());
    }
    // Central asks while it has not seen the shipment, is told "too late" after.
    const auto ask = orders::CentralCancelAction(s);
    if (s == v1::FULFILMENT_CANCELLED) {
      CHECK(ask == CentralCancel::kNothingToDo);
    } else if (r >= orders::Rank(v1::FULFILMENT_SHIPPED)) {
      CHECK(ask == CentralCancel::kTooLate);
    } else {
      CHECK(ask == CentralCancel::kAsk);
    }
    // The view overload asks at most once.
    CHECK(orders::CentralCancelAction(View(s, false)) == ask);
    CHECK(orders::CentralCancelAction(View(s, true)) ==
          (ask == CentralCancel::kAsk ? CentralCancel::kNothingToDo : ask));
    // Delivery: only after shipping; again is a no-op.
    const auto delivered = orders::CheckDelivery(s);
    CHECK(delivered.ok() == (s == v1::FULFILMENT_SHIPPED || s == v1::FULFILMENT_DELIVERED));
    if (!delivered.ok()) {
      CHECK(absl::IsFailedPrecondition(delivered));
      CHECK(Contains(std::string(delivered.message()), orders::StatusName(s)));
    }
  }
}

// ------------------------------------------------------------------------------------------------
// 5. MergeNodeUpdate specifics.

TEST_CASE("order state: MergeNodeUpdate rules", "[order-state]") {
  SECTION("a forward update is taken") {
    const auto out = orders::MergeNodeUpdate(View(v1::FULFILMENT_RELEASED),
                                             Update(v1::FULFILMENT_ACCEPTED, "accepted", {0}));
    CHECK(out.status == v1::FULFILMENT_ACCEPTED);
    CHECK(out.take_lines);
    CHECK(out.newly_short == 0);
    CHECK(out.exceptions.empty());
  }
  SECTION("DELIVERED at central survives a late update") {
    for (auto late : {v1::FULFILMENT_SHIPPED, v1::FULFILMENT_PACKED, v1::FULFILMENT_ACCEPTED}) {
      const auto out =
          orders::MergeNodeUpdate(View(v1::FULFILMENT_DELIVERED), Update(late, "shipped", {0}));
      CHECK(out.status == v1::FULFILMENT_DELIVERED);
      CHECK_FALSE(out.take_lines);
      CHECK(out.exceptions.empty());
    }
    // The late refusal of a cancel central asked for still raises the exception.
    const auto out = orders::MergeNodeUpdate(View(v1::FULFILMENT_DELIVERED, true),
                                             Update(v1::FULFILMENT_SHIPPED, "cancel_refused"));
    CHECK(out.status == v1::FULFILMENT_DELIVERED);
    CHECK(out.exceptions == std::vector<std::string>{"cancel_after_ship"});
  }
  SECTION("a node CANCELLED after central saw SHIPPED is a conflict; shipped wins") {
    for (auto seen : {v1::FULFILMENT_SHIPPED, v1::FULFILMENT_DELIVERED}) {
      const auto out =
          orders::MergeNodeUpdate(View(seen, true), Update(v1::FULFILMENT_CANCELLED, "cancelled"));
      CHECK(out.status == seen);
      CHECK_FALSE(out.take_lines);
      CHECK(out.exceptions == std::vector<std::string>{"conflict"});
    }
  }
  SECTION("cancelled before shipping is taken from any earlier status") {
    for (auto seen : {v1::FULFILMENT_RELEASED, v1::FULFILMENT_ACCEPTED, v1::FULFILMENT_PICKING,
                      v1::FULFILMENT_PICKED, v1::FULFILMENT_PACKED}) {
      const auto out =
          orders::MergeNodeUpdate(View(seen, true), Update(v1::FULFILMENT_CANCELLED, "cancelled"));
      CHECK(out.status == v1::FULFILMENT_CANCELLED);
      CHECK(out.take_lines);
      CHECK(out.exceptions.empty());
    }
  }
  SECTION("nothing follows CANCELLED at central") {
    const auto replay = orders::MergeNodeUpdate(View(v1::FULFILMENT_CANCELLED),
                                                Update(v1::FULFILMENT_CANCELLED, "cancelled"));
    CHECK(replay.status == v1::FULFILMENT_CANCELLED);
    CHECK(replay.exceptions.empty());
    const auto later = orders::MergeNodeUpdate(View(v1::FULFILMENT_CANCELLED),
                                               Update(v1::FULFILMENT_SHIPPED, "shipped"));
    CHECK(later.status == v1::FULFILMENT_CANCELLED);
    CHECK_FALSE(later.take_lines);
    CHECK(later.exceptions == std::vector<std::string>{"conflict"});
  }
  SECTION("cancel_refused: an exception only if central asked") {
    const auto unasked = orders::MergeNodeUpdate(View(v1::FULFILMENT_PACKED, false),
                                                 Update(v1::FULFILMENT_SHIPPED, "cancel_refused"));
    CHECK(unasked.status == v1::FULFILMENT_SHIPPED);
    CHECK(unasked.exceptions.empty());
    const auto asked = orders::MergeNodeUpdate(View(v1::FULFILMENT_SHIPPED, true),
                                               Update(v1::FULFILMENT_SHIPPED, "cancel_refused"));
    CHECK(asked.status == v1::FULFILMENT_SHIPPED);
    CHECK(asked.exceptions == std::vector<std::string>{"cancel_after_ship"});
  }
  SECTION("an older update (a replay) never moves central back") {
    const auto out = orders::MergeNodeUpdate(View(v1::FULFILMENT_PACKED, false, 1),
                                             Update(v1::FULFILMENT_PICKING, "short", {1, 3}));
    CHECK(out.status == v1::FULFILMENT_PACKED);
    CHECK_FALSE(out.take_lines);
    CHECK(out.newly_short == 0);
    CHECK(out.exceptions.empty());
  }
  SECTION("a short that cancels the fulfilment still hands its units back") {
    // The node shorted the last open units with nothing picked: one "short" change, CANCELLED.
    const auto out = orders::MergeNodeUpdate(View(v1::FULFILMENT_ACCEPTED, false, 1),
                                             Update(v1::FULFILMENT_CANCELLED, "short", {4}));
    CHECK(out.status == v1::FULFILMENT_CANCELLED);
    CHECK(out.take_lines);
    CHECK(out.newly_short == 3);
    CHECK(out.exceptions == std::vector<std::string>{"short_pick"});
  }
  SECTION("short units are handed back once: the difference to what central saw") {
    const auto first = orders::MergeNodeUpdate(View(v1::FULFILMENT_PICKING, false, 1),
                                               Update(v1::FULFILMENT_PICKING, "short", {2, 1}));
    CHECK(first.status == v1::FULFILMENT_PICKING);
    CHECK(first.newly_short == 2);
    CHECK(first.exceptions == std::vector<std::string>{"short_pick"});
    const auto again = orders::MergeNodeUpdate(View(v1::FULFILMENT_PICKING, false, 3),
                                               Update(v1::FULFILMENT_PICKED, "picked", {2, 1}));
    CHECK(again.status == v1::FULFILMENT_PICKED);
    CHECK(again.take_lines);
    CHECK(again.newly_short == 0);
    CHECK(again.exceptions.empty());
  }
}

// ------------------------------------------------------------------------------------------------
// 4. The order's status from its parts.

TEST_CASE("order state: DeriveOrderStatus", "[order-state]") {
  struct Row {
    const char* name;
    orders::OrderFacts facts;
    v1::OrderStatus want;
  };
  auto facts = [](int64_t ordered, int64_t shipped, int64_t cancelled, int64_t open,
                  std::vector<FulfilmentStatus> fs) {
    orders::OrderFacts f;
    f.ordered = ordered;
    f.shipped = shipped;
    f.cancelled = cancelled;
    f.open_units = open;
    f.fulfilments = std::move(fs);
    return f;
  };
  auto held = facts(2, 0, 0, 2, {});
  held.on_hold = true;
  auto rejected = facts(2, 0, 0, 2, {});
  rejected.rejected = true;
  rejected.on_hold = true;  // rejected wins over the hold it came out of
  const std::vector<Row> rows = {
      {"hold", held, v1::ORDER_ON_HOLD},
      {"rejected", rejected, v1::ORDER_REJECTED},
      {"all cancelled, nothing released", facts(3, 0, 3, 0, {}), v1::ORDER_CANCELLED},
      {"all cancelled at the sites",
       facts(3, 0, 3, 0, {v1::FULFILMENT_CANCELLED, v1::FULFILMENT_CANCELLED}),
       v1::ORDER_CANCELLED},
      {"backordered: nothing at a site", facts(3, 0, 0, 3, {}), v1::ORDER_BACKORDERED},
      {"backordered after the only site cancelled", facts(3, 0, 0, 3, {v1::FULFILMENT_CANCELLED}),
       v1::ORDER_BACKORDERED},
      {"released", facts(3, 0, 0, 0, {v1::FULFILMENT_RELEASED}), v1::ORDER_RELEASED},
      {"accepted is still released (nothing picked)",
       facts(3, 0, 0, 0, {v1::FULFILMENT_ACCEPTED, v1::FULFILMENT_RELEASED}), v1::ORDER_RELEASED},
      {"released with part cancelled", facts(3, 0, 1, 0, {v1::FULFILMENT_ACCEPTED}),
       v1::ORDER_RELEASED},
      {"in fulfilment: picking", facts(3, 0, 0, 0, {v1::FULFILMENT_PICKING}),
       v1::ORDER_IN_FULFILMENT},
      {"in fulfilment: one site packed, one released",
       facts(3, 0, 0, 0, {v1::FULFILMENT_RELEASED, v1::FULFILMENT_PACKED}),
       v1::ORDER_IN_FULFILMENT},
      {"in fulfilment: picked", facts(3, 0, 0, 0, {v1::FULFILMENT_PICKED}),
       v1::ORDER_IN_FULFILMENT},
      {"partially shipped: one site shipped, one packing",
       facts(3, 2, 0, 0, {v1::FULFILMENT_SHIPPED, v1::FULFILMENT_PACKED}),
       v1::ORDER_PARTIALLY_SHIPPED},
      {"partially shipped: rest waits for routing", facts(3, 2, 0, 1, {v1::FULFILMENT_SHIPPED}),
       v1::ORDER_PARTIALLY_SHIPPED},
      {"partially shipped: one delivered, one live",
       facts(3, 2, 0, 0, {v1::FULFILMENT_DELIVERED, v1::FULFILMENT_ACCEPTED}),
       v1::ORDER_PARTIALLY_SHIPPED},
      {"shipped", facts(3, 3, 0, 0, {v1::FULFILMENT_SHIPPED}), v1::ORDER_SHIPPED},
      {"shipped with some cancelled",
       facts(3, 2, 1, 0, {v1::FULFILMENT_SHIPPED, v1::FULFILMENT_CANCELLED}), v1::ORDER_SHIPPED},
      {"shipped: one delivered, one not yet",
       facts(3, 3, 0, 0, {v1::FULFILMENT_DELIVERED, v1::FULFILMENT_SHIPPED}), v1::ORDER_SHIPPED},
      {"shipped without a fulfilment on record is not delivered", facts(1, 1, 0, 0, {}),
       v1::ORDER_SHIPPED},
      {"delivered", facts(3, 3, 0, 0, {v1::FULFILMENT_DELIVERED}), v1::ORDER_DELIVERED},
      {"delivered with some cancelled",
       facts(3, 2, 1, 0, {v1::FULFILMENT_DELIVERED, v1::FULFILMENT_CANCELLED}),
       v1::ORDER_DELIVERED},
      {"delivered from two sites",
       facts(3, 3, 0, 0, {v1::FULFILMENT_DELIVERED, v1::FULFILMENT_DELIVERED}),
       v1::ORDER_DELIVERED},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(orders::OrderStatusName(orders::DeriveOrderStatus(row.facts)) ==
          std::string(orders::OrderStatusName(row.want)));
  }
}

// ------------------------------------------------------------------------------------------------
// 2. and 3. The two-party model and its exhaustive explorer.

using MergeFn = std::function<MergeOutcome(const CentralView&, const v1::FulfilmentUpdate&)>;

// One line of 4 units. As node/fulfilment.cc does: "accept-short" reserves one unit less than
// asked (the accepted update carries the short unit); "pick" picks one unit while more than one is
// open, "pick-done" picks the rest; "short" shorts one open unit, and when that was the last open
// one the same change finishes picking (PICKED) or, with nothing picked, cancels the fulfilment.
// Every run is finite, so the state space is closed.
constexpr int64_t kQuantity = 4;

enum class Change : uint8_t { kAccepted, kPicked, kShort, kPacked, kShipped, kCancelled, kRefused };
const char* ChangeName(Change c) {
  switch (c) {
    case Change::kAccepted: return "accepted";
    case Change::kPicked: return "picked";
    case Change::kShort: return "short";
    case Change::kPacked: return "packed";
    case Change::kShipped: return "shipped";
    case Change::kCancelled: return "cancelled";
    case Change::kRefused: return "cancel_refused";
  }
  return "?";
}

// The node's whole state after a change, as it travels up (compact; expanded at delivery).
struct UpMsg {
  FulfilmentStatus status;
  int64_t picked;
  int64_t short_total;
  int64_t shipped;
  Change change;
  auto Key() const { return std::tuple(int(status), picked, short_total, shipped, int(change)); }
};

enum class Move : uint8_t {
  // central
  kRequestCancel,
  kConfirmDelivery,
  // node
  kAccept,
  kAcceptShort,
  kPick,
  kPickDone,
  kShort,
  kPack,
  kShip,
  kLocalCancel,
  kProcessCancel,
  // the network
  kDeliverUp,
  kDeliverDown,
};
constexpr std::array<Move, 2> kCentralMoves = {Move::kRequestCancel, Move::kConfirmDelivery};
constexpr std::array<Move, 9> kNodeMoves = {
    Move::kAccept, Move::kAcceptShort, Move::kPick,        Move::kPickDone,     Move::kShort,
    Move::kPack,   Move::kShip,        Move::kLocalCancel, Move::kProcessCancel};
constexpr std::array<Move, 13> kAllMoves = {
    Move::kRequestCancel, Move::kConfirmDelivery, Move::kAccept,        Move::kAcceptShort,
    Move::kPick,          Move::kPickDone,        Move::kShort,         Move::kPack,
    Move::kShip,          Move::kLocalCancel,     Move::kProcessCancel, Move::kDeliverUp,
    Move::kDeliverDown};

const char* MoveName(Move m) {
  switch (m) {
    case Move::kRequestCancel: return "central:request-cancel";
    case Move::kConfirmDelivery: return "central:confirm-delivery";
    case Move::kAccept: return "node:accept";
    case Move::kAcceptShort: return "node:accept-short";
    case Move::kPick: return "node:pick";
    case Move::kPickDone: return "node:pick-done";
    case Move::kShort: return "node:short";
    case Move::kPack: return "node:pack";
    case Move::kShip: return "node:ship";
    case Move::kLocalCancel: return "node:local-cancel";
    case Move::kProcessCancel: return "node:process-cancel-request";
    case Move::kDeliverUp: return "deliver-up";
    case Move::kDeliverDown: return "deliver-down";
  }
  return "?";
}

struct ModelRules {
  MergeFn merge = orders::MergeNodeUpdate;
  // Central decides whether to ask with its whole view (asks once) or with the status only.
  bool ask_by_view = true;
};

struct World {
  // The node: owns the status.
  FulfilmentStatus node_status = v1::FULFILMENT_RELEASED;
  int64_t node_picked = 0;
  int64_t node_short = 0;
  int64_t node_shipped = 0;       // units handed to the carrier
  int node_pending_cancels = 0;   // requests received, not yet decided
  // The network.
  std::vector<UpMsg> up;          // FIFO node -> central
  int down = 0;                   // FIFO central -> node (requests are alike: a count is a FIFO)
  // Central.
  CentralView central;
  // What happened (for the invariants).
  bool asked_cancel = false;
  int cancel_after_ship = 0;
  int conflicts = 0;
  int short_picks = 0;
  int64_t newly_short_sum = 0;
  bool went_backwards = false;
  std::string backwards;          // the first backward move, for the report
  bool rules_disagree = false;    // DecideCancel said cancel, NodeTransition refused

  std::string Key() const {
    std::ostringstream k;
    k << int(node_status) << ',' << node_picked << ',' << node_short << ',' << node_shipped << ','
      << node_pending_cancels << '|';
    for (const auto& m : up) {
      k << int(m.status) << ':' << m.picked << ':' << m.short_total << ':' << m.shipped << ':'
        << int(m.change) << ';';
    }
    k << '|' << down << '|' << int(central.status) << ',' << central.cancel_requested << ','
      << central.short_total << '|' << asked_cancel << cancel_after_ship << conflicts << short_picks
      << ',' << newly_short_sum << went_backwards << rules_disagree;
    return k.str();
  }
};

std::string Describe(const World& w) {
  std::ostringstream s;
  s << "node=" << orders::StatusName(w.node_status) << " picked=" << w.node_picked
    << " short=" << w.node_short
    << " shipped=" << w.node_shipped << " pending_cancels=" << w.node_pending_cancels
    << " | central=" << orders::StatusName(w.central.status)
    << " cancel_requested=" << w.central.cancel_requested << " short=" << w.central.short_total
    << " | in flight up=" << w.up.size() << " down=" << w.down
    << " | cancel_after_ship=" << w.cancel_after_ship << " conflicts=" << w.conflicts
    << " newly_short_sum=" << w.newly_short_sum;
  return s.str();
}

v1::FulfilmentUpdate Expand(const UpMsg& m) {
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("o1-1");
  u.set_order_id("o1");
  u.set_status(m.status);
  u.set_change(ChangeName(m.change));
  auto* l = u.add_lines();
  l->set_line_no(1);
  l->set_sku("SKU-1");
  l->set_quantity(kQuantity);
  const bool holds = m.status != v1::FULFILMENT_CANCELLED && m.status != v1::FULFILMENT_RELEASED;
  l->set_reserved(holds ? kQuantity - m.short_total : 0);
  l->set_picked(m.picked);
  l->set_short_quantity(m.short_total);
  l->set_shipped(m.shipped);
  if (m.change == Change::kShort) l->set_short_reason("not_found");
  return u;
}

// Caches the expanded protos: the explorer delivers millions of messages drawn from a few dozen.
const v1::FulfilmentUpdate& Expanded(const UpMsg& m) {
  static std::map<decltype(m.Key()), v1::FulfilmentUpdate> cache;
  auto it = cache.find(m.Key());
  if (it == cache.end()) it = cache.emplace(m.Key(), Expand(m)).first;
  return it->second;
}

void SetCentralStatus(World& w, FulfilmentStatus next, const char* why) {
  const FulfilmentStatus prev = w.central.status;
  if (prev == next) return;
  bool ok;
  if (prev == v1::FULFILMENT_CANCELLED) {
    ok = false;  // terminal
  } else if (next == v1::FULFILMENT_CANCELLED) {
    ok = orders::Rank(prev) < orders::Rank(v1::FULFILMENT_SHIPPED);
  } else {
    ok = orders::Rank(next) > orders::Rank(prev);
  }
  if (!ok && !w.went_backwards) {
    w.went_backwards = true;
    w.backwards = std::string(orders::StatusName(prev)) + " -> " + orders::StatusName(next) +
                  " by " + why;
  }
  w.central.status = next;
}

void NodeEmit(World& w, Change c) {
  w.up.push_back(UpMsg{w.node_status, w.node_picked, w.node_short, w.node_shipped, c});
}

int64_t Open(const World& w) { return kQuantity - w.node_picked - w.node_short; }

// The node's status change for action `a` (no update sent); false if the machine refuses it.
bool NodeMove(World& w, NodeAction a) {
  const auto next = orders::NodeTransition(w.node_status, a);
  if (!next.ok()) return false;
  w.node_status = *next;
  if (a == NodeAction::kPickDone) w.node_picked = kQuantity - w.node_short;
  if (a == NodeAction::kShip) w.node_shipped = w.node_picked;
  if (a == NodeAction::kCancel) w.node_picked = 0;  // picked goods go back to a bin
  return true;
}

bool NodeStep(World& w, NodeAction a, Change c) {
  if (a == NodeAction::kPick && Open(w) <= 1) return false;  // the last one is pick-done
  if (!NodeMove(w, a)) return false;
  if (a == NodeAction::kPick) ++w.node_picked;
  NodeEmit(w, c);
  return true;
}

// Applies one move; false when it is not possible in this state (the world is then unchanged).
bool Apply(World& w, Move m, const ModelRules& rules) {
  switch (m) {
    case Move::kRequestCancel: {
      const CentralCancel ask = rules.ask_by_view ? orders::CentralCancelAction(w.central)
                                                  : orders::CentralCancelAction(w.central.status);
      if (ask != CentralCancel::kAsk) return false;
      w.central.cancel_requested = true;
      w.asked_cancel = true;
      ++w.down;
      return true;
    }
    case Move::kConfirmDelivery:
      if (!orders::CheckDelivery(w.central.status).ok()) return false;
      if (w.central.status == v1::FULFILMENT_DELIVERED) return false;  // a no-op, not a move
      SetCentralStatus(w, v1::FULFILMENT_DELIVERED, "confirm delivery");
      return true;
    case Move::kAccept: return NodeStep(w, NodeAction::kAccept, Change::kAccepted);
    case Move::kPick: return NodeStep(w, NodeAction::kPick, Change::kPicked);
    case Move::kPickDone: return NodeStep(w, NodeAction::kPickDone, Change::kPicked);
    case Move::kPack: return NodeStep(w, NodeAction::kPack, Change::kPacked);
    case Move::kShip: return NodeStep(w, NodeAction::kShip, Change::kShipped);
    case Move::kLocalCancel: return NodeStep(w, NodeAction::kCancel, Change::kCancelled);
    case Move::kAcceptShort:
      if (!NodeMove(w, NodeAction::kAccept)) return false;
      w.node_short = 1;
      NodeEmit(w, Change::kAccepted);
      return true;
    case Move::kShort: {
      if (!orders::CheckShortPick(w.node_status).ok() || Open(w) <= 0) return false;
      ++w.node_short;
      bool ok = true;
      if (Open(w) == 0 && w.node_picked == 0) {
        ok = NodeMove(w, NodeAction::kCancel);  // nothing to ship from here
      } else if (Open(w) == 0) {
        ok = NodeMove(w, NodeAction::kPickDone);
      } else if (w.node_picked > 0) {
        ok = NodeMove(w, NodeAction::kPick);
      }
      if (!ok) w.rules_disagree = true;
      NodeEmit(w, Change::kShort);
      return true;
    }
    case Move::kProcessCancel: {
      if (w.node_pending_cancels == 0) return false;
      --w.node_pending_cancels;
      switch (orders::DecideCancel(w.node_status)) {
        case CancelDecision::kCancel: {
          const bool ok = NodeStep(w, NodeAction::kCancel, Change::kCancelled);
          if (!ok) w.rules_disagree = true;
          break;
        }
        case CancelDecision::kAlreadyCancelled: break;  // the "cancelled" update is on its way
        case CancelDecision::kRefuseShipped: NodeEmit(w, Change::kRefused); break;
      }
      return true;
    }
    case Move::kDeliverUp: {
      if (w.up.empty()) return false;
      const UpMsg msg = w.up.front();
      w.up.erase(w.up.begin());
      const MergeOutcome out = rules.merge(w.central, Expanded(msg));
      for (const auto& e : out.exceptions) {
        if (e == "cancel_after_ship") ++w.cancel_after_ship;
        if (e == "conflict") ++w.conflicts;
        if (e == "short_pick") ++w.short_picks;
      }
      w.newly_short_sum += out.newly_short;
      w.central.short_total += out.newly_short;
      SetCentralStatus(w, out.status, ChangeName(msg.change));
      return true;
    }
    case Move::kDeliverDown:
      if (w.down == 0) return false;
      --w.down;
      ++w.node_pending_cancels;
      return true;
  }
  return false;
}

void DeliverAll(World& w, const ModelRules& rules) {
  while (Apply(w, Move::kDeliverUp, rules)) {}
  while (Apply(w, Move::kDeliverDown, rules)) {}
}

void Quiesce(World& w, const ModelRules& rules) {
  DeliverAll(w, rules);
  while (Apply(w, Move::kProcessCancel, rules)) {}
  DeliverAll(w, rules);
}

// The invariants (SYNC.md invariant 5) on a quiescent world. Returns the letters that fail.
std::string Violations(const World& w) {
  std::string bad;
  const auto c = w.central.status;
  const auto n = w.node_status;
  // (a) agreement, modulo central's DELIVERED (a fact the node does not track).
  if (!(c == n || (c == v1::FULFILMENT_DELIVERED && n == v1::FULFILMENT_SHIPPED))) bad += 'a';
  // (b) never shipped and cancelled without exactly one exception saying so; a request is answered.
  const bool shipped_final = c == v1::FULFILMENT_SHIPPED || c == v1::FULFILMENT_DELIVERED;
  if (w.asked_cancel && shipped_final && w.cancel_after_ship != 1) bad += 'b';
  if ((!w.asked_cancel || c == v1::FULFILMENT_CANCELLED) && w.cancel_after_ship != 0) bad += 'b';
  if (c == v1::FULFILMENT_CANCELLED && (w.node_shipped != 0 || n != v1::FULFILMENT_CANCELLED)) {
    bad += 'b';
  }
  if (w.asked_cancel && !orders::IsFinal(c)) bad += 'b';
  // (c) central never moves backwards (except to CANCELLED before SHIPPED).
  if (w.went_backwards) bad += 'c';
  // (d) short units are handed back exactly once.
  if (w.newly_short_sum != w.node_short || w.central.short_total != w.node_short) bad += 'd';
  if (w.short_picks != w.node_short) bad += 'd';  // each short pick (1 unit here) raised once
  // (e) no conflict in a legal schedule.
  if (w.conflicts != 0) bad += 'e';
  // Quiescence really is quiet, and the rules agree with each other.
  if (!w.up.empty() || w.down != 0 || w.node_pending_cancels != 0) bad += 'q';
  if (w.rules_disagree) bad += 'x';
  std::sort(bad.begin(), bad.end());
  bad.erase(std::unique(bad.begin(), bad.end()), bad.end());
  return bad;
}

// What holds in every state, quiescent or not: central follows the node and never leads it.
std::string AlwaysViolations(const World& w) {
  std::string bad;
  const auto c = w.central.status;
  const auto n = w.node_status;
  bool follows;
  if (c == v1::FULFILMENT_CANCELLED) {
    follows = n == v1::FULFILMENT_CANCELLED;
  } else if (n == v1::FULFILMENT_CANCELLED) {
    follows = orders::Rank(c) < orders::Rank(v1::FULFILMENT_SHIPPED);
  } else if (c == v1::FULFILMENT_DELIVERED) {
    follows = n == v1::FULFILMENT_SHIPPED;
  } else {
    follows = orders::Rank(c) <= orders::Rank(n);
  }
  if (!follows) bad += 'a';
  if (w.cancel_after_ship > 1) bad += 'b';
  if (n == v1::FULFILMENT_CANCELLED && w.node_shipped != 0) bad += 'b';
  if (w.went_backwards) bad += 'c';
  if (w.central.short_total > w.node_short) bad += 'd';
  if (w.conflicts != 0) bad += 'e';
  return bad;
}

struct Reached {
  World world;
  std::vector<Move> path;  // from the initial state
};

// Every state reachable from a fresh release within `depth` moves (deduplicated); depth < 0: all.
// Stops at kMaxStates (a wrong rule can make the space infinite): callers check the size.
constexpr size_t kMaxStates = 100000;
std::vector<Reached> ReachableStates(const ModelRules& rules, int depth) {
  std::vector<Reached> all{Reached{World{}, {}}};
  std::set<std::string> seen{all[0].world.Key()};
  size_t frontier_begin = 0;
  for (int d = 0; depth < 0 || d < depth; ++d) {
    const size_t frontier_end = all.size();
    if (frontier_begin == frontier_end) break;  // closed
    for (size_t i = frontier_begin; i < frontier_end; ++i) {
      for (Move m : kAllMoves) {
        World next = all[i].world;
        if (!Apply(next, m, rules)) continue;
        if (!seen.insert(next.Key()).second) continue;
        if (all.size() >= kMaxStates) return all;
        auto path = all[i].path;
        path.push_back(m);
        all.push_back(Reached{std::move(next), std::move(path)});
      }
    }
    frontier_begin = frontier_end;
  }
  return all;
}

struct Exploration {
  int64_t starting_states = 0;
  int64_t schedules = 0;            // every (state, pair, order, deliveries) explored
  int64_t both_effective = 0;       // ... in which both actions of the pair took effect
  int64_t reachable_checked = 0;    // reachable states run to quiescence directly
  int64_t violations = 0;
  std::map<char, int64_t> by_check;
  std::map<std::pair<int, int>, int64_t> final_outcomes;  // (central, node) final status -> count
  int64_t cancel_won = 0;   // central asked and the fulfilment ended cancelled
  int64_t ship_won = 0;     // central asked, the node had shipped: cancel_after_ship
  int64_t with_short = 0;   // ended with short units handed back
  std::vector<std::string> examples;              // the first few violations, spelled out
};

std::string PathText(const std::vector<Move>& path) {
  std::string s;
  for (Move m : path) s += std::string(s.empty() ? "" : ", ") + MoveName(m);
  return s.empty() ? "(fresh release)" : s;
}

// Checks a quiescent end state; `how` spells out the schedule, built only for a reported failure.
template <typename How>
void Record(Exploration& x, const World& end, const How& how) {
  const std::string bad = Violations(end);
  x.final_outcomes[{end.central.status, end.node_status}]++;
  if (end.asked_cancel && end.central.status == v1::FULFILMENT_CANCELLED) ++x.cancel_won;
  if (end.asked_cancel && end.cancel_after_ship > 0) ++x.ship_won;
  if (end.newly_short_sum > 0) ++x.with_short;
  if (bad.empty()) return;
  ++x.violations;
  for (char c : bad) x.by_check[c]++;
  if (x.examples.size() < 5) {
    x.examples.push_back("[" + bad + "] " + how() + "\n    end: " + Describe(end) +
                         (end.went_backwards ? "\n    backwards: " + end.backwards : ""));
  }
}

// Delivers `up` node->central and `down` central->node messages (the channels are independent,
// so the order between the two does not matter; within each, FIFO).
void Deliver(World& w, size_t up, int down, const ModelRules& rules) {
  for (size_t i = 0; i < up; ++i) Apply(w, Move::kDeliverUp, rules);
  for (int i = 0; i < down; ++i) Apply(w, Move::kDeliverDown, rules);
}

// Explores every schedule; with `until`, stops once each of those checks has failed somewhere.
Exploration Explore(const ModelRules& rules, int depth, const std::string& until = "") {
  Exploration x;
  auto found_all = [&] {
    if (until.empty()) return false;
    for (char c : until) {
      if (!x.by_check.count(c)) return false;
    }
    return true;
  };
  const auto states = ReachableStates(rules, depth);
  x.starting_states = static_cast<int64_t>(states.size());
  for (const auto& start : states) {
    // Every reachable state settles correctly on its own.
    World settled = start.world;
    Quiesce(settled, rules);
    Record(x, settled, [&] { return "reachable: " + PathText(start.path) + ", then quiescence"; });
    ++x.reachable_checked;
    if (found_all()) return x;

    for (Move cm : kCentralMoves) {
      for (Move nm : kNodeMoves) {
        for (int order = 0; order < 2; ++order) {
          const Move first = order == 0 ? cm : nm;
          const Move second = order == 0 ? nm : cm;
          for (size_t u1 = 0; u1 <= start.world.up.size(); ++u1) {
            for (int d1 = 0; d1 <= start.world.down; ++d1) {
              World w1 = start.world;
              Deliver(w1, u1, d1, rules);
              const bool first_ok = Apply(w1, first, rules);
              for (size_t u2 = 0; u2 <= w1.up.size(); ++u2) {
                for (int d2 = 0; d2 <= w1.down; ++d2) {
                  World w2 = w1;
                  Deliver(w2, u2, d2, rules);
                  const bool second_ok = Apply(w2, second, rules);
                  Quiesce(w2, rules);
                  ++x.schedules;
                  if (first_ok && second_ok) ++x.both_effective;
                  Record(x, w2, [&] {
                    std::ostringstream how;
                    how << "from: " << PathText(start.path) << "\n    then deliver " << u1
                        << " up/" << d1 << " down, " << MoveName(first)
                        << (first_ok ? "" : " (refused)") << ", deliver " << u2 << " up/" << d2
                        << " down, " << MoveName(second) << (second_ok ? "" : " (refused)")
                        << ", quiescence";
                    return how.str();
                  });
                  if (found_all()) return x;
                }
              }
            }
          }
        }
      }
    }
  }
  return x;
}

std::string Summary(const Exploration& x, bool with_examples = true) {
  std::ostringstream s;
  s << x.starting_states << " starting states, " << x.schedules << " schedules ("
    << x.both_effective << " with both actions effective; cancel requested and won " << x.cancel_won
    << ", lost to the shipment " << x.ship_won << "; short picks " << x.with_short << "), "
    << x.violations << " violations";
  for (const auto& [check, n] : x.by_check) s << " [" << check << "]=" << n;
  if (with_examples) {
    for (const auto& e : x.examples) s << "\n  " << e;
  }
  return s.str();
}

TEST_CASE("order state: every reachable state of the model settles correctly", "[order-state]") {
  // The whole (finite) state space: every interleaving of any number of node actions, central
  // actions and deliveries. Every state must satisfy the always-invariants, and must reach a
  // correct end when the network delivers and the node answers its pending requests.
  const ModelRules rules;
  const auto states = ReachableStates(rules, -1);
  int64_t bad = 0, quiescent = 0;
  std::string first;
  for (const auto& s : states) {
    World end = s.world;
    Quiesce(end, rules);
    const std::string v = AlwaysViolations(s.world) + Violations(end);
    if (s.world.up.empty() && s.world.down == 0 && s.world.node_pending_cancels == 0) ++quiescent;
    if (!v.empty() && bad++ == 0) {
      first = "[" + v + "] " + PathText(s.path) + "\n    " + Describe(s.world) + "\n    end: " +
              Describe(end);
    }
  }
  WARN("order-state model: " << states.size() << " reachable states (" << quiescent
                             << " quiescent), " << bad << " violations " << first);
  CHECK(bad == 0);
  CHECK(states.size() > 1000);
  CHECK(states.size() < kMaxStates);  // closed: the whole space was seen
}

TEST_CASE("order state: every pair of concurrent transitions, every delivery schedule",
          "[order-state]") {
  const Exploration x = Explore(ModelRules{}, -1);  // from every reachable state
  WARN("order-state model check: " << Summary(x));
  std::ostringstream outcomes;
  for (const auto& [k, n] : x.final_outcomes) {
    outcomes << orders::StatusName(static_cast<FulfilmentStatus>(k.first)) << "/"
             << orders::StatusName(static_cast<FulfilmentStatus>(k.second)) << "=" << n << " ";
  }
  WARN("final (central/node) outcomes: " << outcomes.str());
  CHECK(x.violations == 0);
  // Exhaustive and not vacuous: many schedules, and the races that matter all happen.
  CHECK(x.starting_states > 1000);
  CHECK(static_cast<size_t>(x.starting_states) < kMaxStates);  // the whole space, not a cut
  REQUIRE(x.schedules > 1000000);
  CHECK(x.both_effective > 10000);
  CHECK(x.cancel_won > 0);
  CHECK(x.ship_won > 0);
  CHECK(x.with_short > 0);
  CHECK(x.final_outcomes.count({v1::FULFILMENT_CANCELLED, v1::FULFILMENT_CANCELLED}));
  CHECK(x.final_outcomes.count({v1::FULFILMENT_SHIPPED, v1::FULFILMENT_SHIPPED}));
  CHECK(x.final_outcomes.count({v1::FULFILMENT_DELIVERED, v1::FULFILMENT_SHIPPED}));
}

TEST_CASE("order state: the cancel race outcomes", "[order-state]") {
  const ModelRules rules;
  auto run = [&](std::vector<Move> moves) {
    World w;
    for (Move m : moves) {
      INFO(MoveName(m) << " in " << Describe(w));
      REQUIRE(Apply(w, m, rules));
    }
    Quiesce(w, rules);
    INFO(Describe(w));
    CHECK(Violations(w).empty());
    return w;
  };
  using M = Move;
  SECTION("request reaches the node before it ships: cancelled, no exception") {
    const World w = run({M::kAccept, M::kPickDone, M::kPack, M::kDeliverUp, M::kDeliverUp,
                         M::kDeliverUp, M::kRequestCancel, M::kDeliverDown, M::kProcessCancel});
    CHECK(w.central.status == v1::FULFILMENT_CANCELLED);
    CHECK(w.node_shipped == 0);
    CHECK(w.cancel_after_ship == 0);
    // The node cannot ship any more.
    CHECK_FALSE(orders::NodeTransition(w.node_status, NodeAction::kShip).ok());
  }
  SECTION("the node ships while the request is in flight: shipped, one cancel_after_ship") {
    const World w = run({M::kAccept, M::kPickDone, M::kPack, M::kDeliverUp, M::kDeliverUp,
                         M::kDeliverUp, M::kRequestCancel, M::kShip, M::kDeliverDown});
    CHECK(w.central.status == v1::FULFILMENT_SHIPPED);
    CHECK(w.cancel_after_ship == 1);
  }
  SECTION("central saw the shipment first: too late, no request, no exception") {
    World w;
    for (M m : {M::kAccept, M::kPickDone, M::kPack, M::kShip}) REQUIRE(Apply(w, m, rules));
    DeliverAll(w, rules);
    CHECK(orders::CentralCancelAction(w.central) == CentralCancel::kTooLate);
    CHECK_FALSE(Apply(w, M::kRequestCancel, rules));
    CHECK(w.cancel_after_ship == 0);
  }
  SECTION("delivered before the refusal arrives: stays delivered, one cancel_after_ship") {
    const World w = run({M::kAccept, M::kPickDone, M::kPack, M::kRequestCancel, M::kShip,
                         M::kDeliverDown, M::kProcessCancel, M::kDeliverUp, M::kDeliverUp,
                         M::kDeliverUp, M::kDeliverUp, M::kConfirmDelivery});
    CHECK(w.central.status == v1::FULFILMENT_DELIVERED);
    CHECK(w.cancel_after_ship == 1);
  }
  SECTION("shorting everything with nothing picked cancels at the node; shorts reach central") {
    const World w = run({M::kAcceptShort, M::kShort, M::kShort, M::kShort});
    CHECK(w.node_status == v1::FULFILMENT_CANCELLED);
    CHECK(w.central.status == v1::FULFILMENT_CANCELLED);
    CHECK(w.newly_short_sum == kQuantity);
    CHECK(w.short_picks == kQuantity);
  }
  SECTION("the node cancelled locally before the request: the request is a no-op") {
    const World w = run({M::kAccept, M::kShort, M::kLocalCancel, M::kRequestCancel});
    CHECK(w.central.status == v1::FULFILMENT_CANCELLED);
    CHECK(w.newly_short_sum == 1);
    CHECK(w.cancel_after_ship == 0);
  }
}

// ------------------------------------------------------------------------------------------------
// 3. The checks can fail: the same explorer with wrong rules finds violations.

TEST_CASE("order state: the explorer catches wrong merge rules", "[order-state]") {
  // The same explorer, stopping at the first schedule that breaks `expect`. Starting states up to
  // 10 moves deep: a wrong rule can make the state space infinite (central asking forever).
  auto explore = [&](ModelRules rules, const std::string& expect) {
    const Exploration x = Explore(rules, 10, expect);
    INFO(Summary(x));
    WARN("wrong rule caught: " << x.violations << " violating schedule(s) of " << x.schedules
                               << " explored before every expected check failed");
    CHECK(x.violations > 0);
    for (char c : expect) {
      INFO("check " << c);
      CHECK(x.by_check.count(c));
    }
    return x;
  };
  SECTION("last write wins") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      MergeOutcome out;
      out.status = u.status();
      out.take_lines = true;
      int64_t total = 0;
      for (const auto& l : u.lines()) total += l.short_quantity();
      out.newly_short = std::max<int64_t>(0, total - cur.short_total);
      return out;
    };
    // The cancel after ship goes unnoticed (b); a late update un-delivers a delivered one (c).
    explore(rules, "bc");
  }
  SECTION("the refusal raises no exception") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      auto out = orders::MergeNodeUpdate(cur, u);
      out.exceptions.erase(std::remove(out.exceptions.begin(), out.exceptions.end(),
                                       std::string("cancel_after_ship")),
                           out.exceptions.end());
      return out;
    };
    explore(rules, "b");
  }
  SECTION("central asks again while its request is outstanding") {
    ModelRules rules;
    rules.ask_by_view = false;  // decides by status only
    explore(rules, "b");  // two refusals, two cancel_after_ship
  }
  SECTION("a cancelled update is ignored") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      if (u.status() == v1::FULFILMENT_CANCELLED) {
        MergeOutcome out;
        out.status = cur.status;
        return out;
      }
      return orders::MergeNodeUpdate(cur, u);
    };
    explore(rules, "a");
  }
  SECTION("short units counted on every update") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      auto out = orders::MergeNodeUpdate(cur, u);
      int64_t total = 0;
      for (const auto& l : u.lines()) total += l.short_quantity();
      out.newly_short = out.take_lines ? total : 0;
      return out;
    };
    explore(rules, "d");
  }
  SECTION("short units on a cancelled update are dropped (the rule before this test)") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      auto out = orders::MergeNodeUpdate(cur, u);
      if (u.status() == v1::FULFILMENT_CANCELLED) {
        out.newly_short = 0;
        out.exceptions.erase(std::remove(out.exceptions.begin(), out.exceptions.end(),
                                         std::string("short_pick")),
                             out.exceptions.end());
      }
      return out;
    };
    explore(rules, "d");  // shorting the last units with nothing picked cancels at the node
  }
  SECTION("every cancel is a conflict") {
    ModelRules rules;
    rules.merge = [](const CentralView& cur, const v1::FulfilmentUpdate& u) {
      auto out = orders::MergeNodeUpdate(cur, u);
      if (u.status() == v1::FULFILMENT_CANCELLED) out.exceptions.push_back("conflict");
      return out;
    };
    explore(rules, "e");
  }
}

}  // namespace
}  // namespace depot
