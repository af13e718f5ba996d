// Central's order service in-process against a real SQLite store in a temp dir: capture, review,
// routing and release into the feed, node updates through ApplyEvents (the same path the sync
// engine uses), re-routing, cancellation, delivery, exceptions and KPIs. Stock arrives with a grant
// of selling rights to central (CentralWorld::Receive): routing allocates against those.
#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "tests/unit/central_fixture.h"

using namespace depot;
using absl::StrContains;

using testing::CentralWorld;
using testing::Events;
using testing::Has;
using testing::kSecond;
using testing::Req;
using testing::Upd;
using World = CentralWorld;

TEST_CASE("capture expands kits, routes, releases into the site's feed and replays",
          "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);
  w.Receive("S1", "B", 5);
  const int changes = w.feed_changes;

  v1::Order o = w.Capture(Req("web", "E-1", {{"KIT", 2, 5000}, {"C", 1, 250}}));
  CHECK(o.order_id() == "O00000001");
  REQUIRE(o.lines_size() == 3);
  CHECK(o.lines(0).sku() == "A");
  CHECK(o.lines(0).kit_sku() == "KIT");
  CHECK(o.lines(0).quantity() == 4);
  CHECK(o.lines(0).unit_price_cents() == 5000);
  CHECK(o.lines(1).sku() == "B");
  CHECK(o.lines(1).kit_sku() == "KIT");
  CHECK(o.lines(1).quantity() == 2);
  CHECK(o.lines(1).unit_price_cents() == 0);
  CHECK(o.lines(2).sku() == "C");
  CHECK(o.lines(2).kit_sku().empty());
  CHECK(o.value_cents() == 2 * 5000 + 250);
  CHECK(o.currency() == "EUR");
  CHECK(o.captured_ms() == w.NowMs());

  // C has no stock anywhere: web allows splits, so A and B go to S1 and C stays open.
  REQUIRE(o.fulfilments_size() == 1);
  const v1::Fulfilment& f = o.fulfilments(0);
  CHECK(f.fulfilment_id() == "O00000001-1");
  CHECK(f.site() == "S1");
  CHECK(f.status() == v1::FULFILMENT_RELEASED);
  CHECK(f.released_ms() == w.NowMs());
  INFO(f.reason());
  CHECK(StrContains(f.reason(), "S1 covers 6 of 7 remaining units"));
  CHECK(o.status() == v1::ORDER_RELEASED);
  CHECK(o.lines(0).allocated() == 4);
  CHECK(o.lines(2).allocated() == 0);
  CHECK(StrContains(o.routing_note(), "1 of 7 units backordered"));
  auto ev = Events(o);
  for (const char* e : {"captured", "routed", "released", "backordered"}) CHECK(Has(ev, e));
  CHECK(StrContains(o.history(0).detail(), "(by tester)"));

  // The release is in S1's feed, and the sessions were woken.
  auto feed = w.Feed("S1");
  REQUIRE(feed.size() == 1);
  const v1::FulfilmentRelease& r = feed[0].release();
  CHECK(r.fulfilment_id() == "O00000001-1");
  CHECK(r.order_id() == "O00000001");
  CHECK(r.channel() == "web");
  CHECK(r.service_level() == "standard");
  CHECK(r.ship_to().city() == "Springfield");
  REQUIRE(r.lines_size() == 2);
  CHECK(r.lines(0).line_no() == 1);
  CHECK(r.lines(0).sku() == "A");
  CHECK(r.lines(0).quantity() == 4);
  CHECK(r.released_hlc() != 0);
  CHECK(w.feed_changes > changes);
  CHECK(w.Feed("S2").empty());

  // The same request again: the same order, replayed, nothing new.
  auto again = w.orders->Capture(Req("web", "E-1", {{"KIT", 2, 5000}, {"C", 1, 250}}));
  REQUIRE(again.ok());
  CHECK(again->replayed());
  CHECK(again->order().order_id() == "O00000001");
  CHECK(w.Feed("S1").size() == 1);
  CHECK(w.OrderCount() == 1);

  // Other content under the same external id: ALREADY_EXISTS, nothing changed.
  auto conflict = w.orders->Capture(Req("web", "E-1", {{"KIT", 3, 5000}}));
  CHECK(conflict.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(StrContains(conflict.status().message(), "O00000001"));
  CHECK(w.OrderCount() == 1);
  CHECK(w.Get("O00000001").lines(0).quantity() == 4);
  // The same external id in another channel is another order, and ids stay gap-free.
  w.Receive("S2", "A", 5);
  CHECK(w.Capture(Req("market", "E-1", {{"A", 1, 100}}, "west")).order_id() == "O00000002");
}

TEST_CASE("bad captures are refused with clear errors and write nothing", "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);
  auto code = [&](const v1::CaptureOrderRequest& r) {
    return w.orders->Capture(r).status().code();
  };
  using absl::StatusCode;
  v1::CaptureOrderRequest r = Req("web", "X", {{"A", 1, 100}});
  r.clear_channel();
  CHECK(code(r) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "", {{"A", 1, 100}})) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "X", {})) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "X", {{"", 1, 100}})) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "X", {{"A", 0, 100}})) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "X", {{"A", -2, 100}})) == StatusCode::kInvalidArgument);
  CHECK(code(Req("web", "X", {{"A", 1, -1}})) == StatusCode::kInvalidArgument);
  r = Req("web", "X", {{"A", 1, 100}});
  r.mutable_ship_to()->clear_country();
  CHECK(code(r) == StatusCode::kInvalidArgument);
  r = Req("web", "X", {{"A", 1, 100}});
  r.set_currency("euro");
  CHECK(code(r) == StatusCode::kInvalidArgument);
  auto unknown_channel = w.orders->Capture(Req("nowhere", "X", {{"A", 1, 100}}));
  CHECK(unknown_channel.status().code() == StatusCode::kNotFound);
  CHECK(StrContains(unknown_channel.status().message(), "unknown channel 'nowhere'"));
  auto unknown_sku = w.orders->Capture(Req("web", "X", {{"A", 1, 100}, {"ZZZ", 1, 100}}));
  CHECK(unknown_sku.status().code() == StatusCode::kNotFound);
  CHECK(StrContains(unknown_sku.status().message(), "line 2: unknown SKU 'ZZZ'"));
  auto zero = w.orders->Capture(Req("web", "X", {{"A", 0, 100}}));
  CHECK(StrContains(zero.status().message(), "line 1: quantity must be greater than 0"));

  CHECK(w.OrderCount() == 0);
  CHECK(w.Feed("S1").empty());
  // Nothing was written: the first real order still gets the first number.
  CHECK(w.Capture(Req("web", "X", {{"A", 1, 100}})).order_id() == "O00000001");
}

TEST_CASE("orders above the review limit or with a doubtful address wait for review",
          "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);

  v1::Order big = w.Capture(Req("market", "M-1", {{"A", 2, 90000}}, "west"));
  CHECK(big.status() == v1::ORDER_ON_HOLD);
  INFO(big.hold_reason());
  CHECK(StrContains(big.hold_reason(), "above channel market's review limit 1000.00 EUR"));
  CHECK(big.fulfilments_size() == 0);
  CHECK(w.Feed("S1").empty());
  CHECK(Has(Events(big), "held"));

  v1::CaptureOrderRequest r = Req("web", "W-1", {{"A", 1, 100}});
  r.mutable_ship_to()->set_country("usa");
  r.mutable_ship_to()->clear_city();
  v1::Order doubtful = w.Capture(r);
  CHECK(doubtful.status() == v1::ORDER_ON_HOLD);
  CHECK(StrContains(doubtful.hold_reason(), "lacks city"));
  CHECK(StrContains(doubtful.hold_reason(), "country 'usa'"));

  // Held orders are not re-routed by the pass.
  CHECK(w.orders->RunRoutingPass().value() == 0);
  CHECK(w.Get(big.order_id()).status() == v1::ORDER_ON_HOLD);

  // Approve: routed at once. S2 (first for market) has nothing, so S1; no split needed.
  v1::ReviewOrderRequest approve;
  approve.set_order_id(big.order_id());
  approve.set_approve(true);
  approve.set_note("called the customer");
  auto approved = w.orders->Review(approve, "sam");
  REQUIRE(approved.ok());
  CHECK(approved->status() == v1::ORDER_RELEASED);
  CHECK(approved->review_note() == "called the customer");
  REQUIRE(approved->fulfilments_size() == 1);
  CHECK(approved->fulfilments(0).site() == "S1");
  auto ev = Events(*approved);
  CHECK(Has(ev, "approved"));
  CHECK(Has(ev, "routed"));
  CHECK(w.Feed("S1").size() == 1);

  // Reviewing again: not on hold any more.
  auto twice = w.orders->Review(approve);
  CHECK(twice.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(StrContains(twice.status().message(), "not on hold"));

  // Reject: terminal; a rejected order cannot be cancelled; unknown orders are NOT_FOUND.
  v1::ReviewOrderRequest reject;
  reject.set_order_id(doubtful.order_id());
  reject.set_approve(false);
  reject.set_note("fraud");
  auto rejected = w.orders->Review(reject);
  REQUIRE(rejected.ok());
  CHECK(rejected->status() == v1::ORDER_REJECTED);
  CHECK(rejected->fulfilments_size() == 0);
  v1::CancelOrderRequest cancel;
  cancel.set_order_id(doubtful.order_id());
  CHECK(w.orders->Cancel(cancel).status().code() == absl::StatusCode::kFailedPrecondition);
  reject.set_order_id("O99999999");
  CHECK(w.orders->Review(reject).status().code() == absl::StatusCode::kNotFound);
  CHECK(w.orders->Get("O99999999").status().code() == absl::StatusCode::kNotFound);

  // Cancelling an order on hold cancels it completely.
  v1::Order held = w.Capture(Req("market", "M-2", {{"A", 3, 90000}}, "west"));
  cancel.set_order_id(held.order_id());
  cancel.set_reason("customer changed their mind");
  auto c = w.orders->Cancel(cancel);
  REQUIRE(c.ok());
  CHECK(c->status() == v1::ORDER_CANCELLED);
  CHECK(c->lines(0).cancelled() == 3);
}

TEST_CASE("a fulfilment follows the node's updates to shipped and delivered", "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);
  v1::Order o = w.Capture(Req("web", "F-1", {{"A", 3, 1000}}));
  REQUIRE(o.fulfilments_size() == 1);
  const std::string id = o.order_id();

  // Released units count against availability until the node accepts (and reserves) them.
  v1::Order second = w.Capture(Req("any", "F-2", {{"A", 7, 10}}));
  CHECK(second.fulfilments(0).site() == "S1");
  w.Receive("S2", "A", 5);
  v1::Order third = w.Capture(Req("web", "F-3", {{"A", 1, 10}}));
  REQUIRE(third.fulfilments_size() == 1);
  CHECK(third.fulfilments(0).site() == "S2");  // S1's 10 are all released

  // accepted: the node reserved the units (reservation and update in one node transaction).
  w.Apply("S1", {World::Movement(v1::RESERVE, "A", 3, o.fulfilments(0).fulfilment_id())});
  w.Send("S1", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));
  v1::Order now = w.Get(id);
  CHECK(now.fulfilments(0).status() == v1::FULFILMENT_ACCEPTED);
  CHECK(now.fulfilments(0).lines(0).reserved() == 3);
  CHECK(now.status() == v1::ORDER_RELEASED);

  w.Send("S1", Upd(o, 0, v1::FULFILMENT_PICKED, "picked"));
  CHECK(w.Get(id).status() == v1::ORDER_IN_FULFILMENT);
  auto packed = Upd(o, 0, v1::FULFILMENT_PACKED, "packed");
  auto* pkg = packed.add_packages();
  pkg->set_package_id("P1");
  pkg->set_weight_g(1200);
  w.Send("S1", packed);
  CHECK(w.Get(id).fulfilments(0).packages_size() == 1);

  w.clock.Advance(90 * kSecond);
  auto shipped = Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped");
  *shipped.mutable_packages() = packed.packages();
  shipped.set_carrier("UPS");
  shipped.set_tracking("1Z-1");
  w.Send("S1", shipped);
  now = w.Get(id);
  CHECK(now.status() == v1::ORDER_SHIPPED);
  CHECK(now.lines(0).shipped() == 3);
  CHECK(now.shipped_ms() == w.NowMs());
  CHECK(now.fulfilments(0).shipped_ms() == w.NowMs());
  CHECK(now.fulfilments(0).carrier() == "UPS");
  CHECK(now.fulfilments(0).tracking() == "1Z-1");
  auto ev = Events(now);
  for (const char* e :
       {"captured", "routed", "released", "accepted", "picked", "packed", "shipped"}) {
    CHECK(Has(ev, e));
  }
  CHECK(now.history(now.history_size() - 1).site() == "S1");

  // A late, older update (e.g. replayed by a restored node) does not move it back.
  w.Send("S1", Upd(o, 0, v1::FULFILMENT_PICKED, "picked"));
  CHECK(w.Get(id).status() == v1::ORDER_SHIPPED);

  // Listing filters and pages.
  v1::ListOrdersRequest list;
  list.set_status(v1::ORDER_SHIPPED);
  auto shipped_list = w.orders->List(list);
  REQUIRE(shipped_list.ok());
  REQUIRE(shipped_list->orders_size() == 1);
  CHECK(shipped_list->orders(0).order_id() == id);
  CHECK(shipped_list->orders(0).history_size() == 0);
  list.Clear();
  list.set_site("S2");
  CHECK(w.orders->List(list)->orders_size() == 1);
  list.Clear();
  list.set_channel("any");
  CHECK(w.orders->List(list)->orders(0).order_id() == second.order_id());
  list.Clear();
  list.set_limit(2);
  auto page1 = w.orders->List(list);
  REQUIRE(page1->orders_size() == 2);
  CHECK(page1->next_after() == page1->orders(1).order_id());
  list.set_after(page1->next_after());
  auto page2 = w.orders->List(list);
  REQUIRE(page2->orders_size() == 1);
  CHECK(page2->next_after().empty());
  list.set_limit(5000);
  CHECK(w.orders->List(list).status().code() == absl::StatusCode::kInvalidArgument);

  // Delivery: failed first (exception, still shipped), then delivered.
  v1::DeliveryRequest d;
  d.set_order_id(id);
  d.set_fulfilment_id(o.fulfilments(0).fulfilment_id());
  d.set_failed(true);
  d.set_note("nobody home");
  auto failed = w.orders->ConfirmDelivery(d);
  REQUIRE(failed.ok());
  CHECK(failed->status() == v1::ORDER_SHIPPED);
  CHECK(failed->fulfilments(0).delivery_note() == "nobody home");
  auto fx = w.Exceptions("failed_shipment", id);
  REQUIRE(fx.size() == 1);
  CHECK(fx[0].fulfilment_id() == d.fulfilment_id());
  CHECK(fx[0].node_id() == "S1");
  d.set_failed(false);
  d.set_note("left with neighbour");
  auto delivered = w.orders->ConfirmDelivery(d);
  REQUIRE(delivered.ok());
  CHECK(delivered->status() == v1::ORDER_DELIVERED);
  CHECK(delivered->fulfilments(0).status() == v1::FULFILMENT_DELIVERED);
  CHECK(delivered->fulfilments(0).delivered_ms() == w.NowMs());
  // Central's DELIVERED survives a node update.
  w.Send("S1", shipped);
  CHECK(w.Get(id).status() == v1::ORDER_DELIVERED);
  // Delivery of a fulfilment that has not shipped is refused.
  d.set_order_id(third.order_id());
  d.set_fulfilment_id(third.fulfilments(0).fulfilment_id());
  CHECK(w.orders->ConfirmDelivery(d).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a short pick raises exceptions and re-routes the rest to another site",
          "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);
  w.Receive("S2", "A", 5);
  v1::Order o = w.Capture(Req("web", "S-1", {{"A", 4, 1000}}));
  REQUIRE(o.fulfilments_size() == 1);
  CHECK(o.fulfilments(0).site() == "S1");
  w.Send("S1", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));

  // One unit found, three not where the system says.
  auto u = Upd(o, 0, v1::FULFILMENT_PICKED, "short");
  u.mutable_lines(0)->set_picked(1);
  u.mutable_lines(0)->set_short_quantity(3);
  u.mutable_lines(0)->set_short_reason("not_found");
  u.set_note("not_found");
  w.Send("S1", u);
  v1::Order now = w.Get(o.order_id());
  CHECK(now.lines(0).allocated() == 1);
  CHECK(now.status() == v1::ORDER_IN_FULFILMENT);
  auto shorts = w.Exceptions("short_pick", o.order_id());
  REQUIRE(shorts.size() == 1);
  CHECK(shorts[0].node_id() == "S1");
  CHECK(shorts[0].sku() == "A");
  CHECK(shorts[0].fulfilment_id() == o.fulfilments(0).fulfilment_id());
  CHECK(StrContains(shorts[0].message(), "shorted 3 of 4 units of A"));
  CHECK(w.Exceptions("stock_discrepancy", o.order_id()).size() == 1);

  // The re-routing pass sends the 3 units to S2: S1 shorted, so it is excluded although its
  // mirror still shows stock.
  CHECK(w.orders->RunRoutingPass().value() == 1);
  now = w.Get(o.order_id());
  REQUIRE(now.fulfilments_size() == 2);
  CHECK(now.fulfilments(1).fulfilment_id() == o.order_id() + "-2");
  CHECK(now.fulfilments(1).site() == "S2");
  REQUIRE(now.fulfilments(1).lines_size() == 1);
  CHECK(now.fulfilments(1).lines(0).quantity() == 3);
  CHECK(now.lines(0).allocated() == 4);
  REQUIRE(w.Feed("S2").size() == 1);
  CHECK(w.Feed("S2")[0].release().lines(0).quantity() == 3);
  // Nothing left to route: another pass changes nothing.
  CHECK(w.orders->RunRoutingPass().value() == 0);

  // Both ship: the order is shipped with all 4 units.
  auto s1 = Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped");
  s1.mutable_lines(0)->set_picked(1);
  s1.mutable_lines(0)->set_short_quantity(3);
  s1.mutable_lines(0)->set_shipped(1);
  w.Send("S1", s1);
  CHECK(w.Get(o.order_id()).status() == v1::ORDER_PARTIALLY_SHIPPED);
  w.Send("S2", Upd(now, 1, v1::FULFILMENT_SHIPPED, "shipped"));
  now = w.Get(o.order_id());
  CHECK(now.status() == v1::ORDER_SHIPPED);
  CHECK(now.lines(0).shipped() == 4);
}

TEST_CASE("backordered orders are released by the re-routing pass when stock arrives",
          "[central-orders]") {
  World w;
  v1::Order o = w.Capture(Req("market", "B-1", {{"A", 2, 100}}, "west"));
  CHECK(o.status() == v1::ORDER_BACKORDERED);
  CHECK(o.fulfilments_size() == 0);
  CHECK(StrContains(o.routing_note(), "no candidate site has A available"));
  CHECK(w.orders->RunRoutingPass().value() == 0);  // same note: nothing rewritten

  // S1 gets 1, S2 gets 1: market forbids splits, so still backordered, with a new note.
  w.Receive("S1", "A", 1);
  w.Receive("S2", "A", 1);
  CHECK(w.orders->RunRoutingPass().value() == 1);
  v1::Order now = w.Get(o.order_id());
  CHECK(now.status() == v1::ORDER_BACKORDERED);
  CHECK(StrContains(now.routing_note(),
                    "no single site can fill all lines; channel market forbids splits"));

  // S1 is offline now and gets enough: the offline site is the fallback.
  {
    std::lock_guard<std::mutex> lock(w.online_mu);
    w.online = {"S2"};
  }
  w.Receive("S1", "A", 5);
  CHECK(w.orders->RunRoutingPass().value() == 1);
  now = w.Get(o.order_id());
  CHECK(now.status() == v1::ORDER_RELEASED);
  REQUIRE(now.fulfilments_size() == 1);
  CHECK(now.fulfilments(0).site() == "S1");
  CHECK(StrContains(now.fulfilments(0).reason(), "offline"));
  CHECK(now.routing_note().empty());
  CHECK(w.Feed("S1").size() == 1);
}

TEST_CASE("cancel: open units at once, released ones asked of the node, which decides",
          "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);

  SECTION("backordered: cancelled at once") {
    v1::Order o = w.Capture(Req("web", "C-0", {{"B", 2, 100}}));
    CHECK(o.status() == v1::ORDER_BACKORDERED);
    v1::CancelOrderRequest c;
    c.set_order_id(o.order_id());
    c.set_reason("too slow");
    auto r = w.orders->Cancel(c);
    REQUIRE(r.ok());
    CHECK(r->status() == v1::ORDER_CANCELLED);
    CHECK(r->lines(0).cancelled() == 2);
    CHECK(w.Feed("S1").empty());
    CHECK(w.orders->RunRoutingPass().value() == 0);
  }

  SECTION("released: the node cancels; the units are the customer's cancellation") {
    v1::Order o = w.Capture(Req("web", "C-1", {{"A", 3, 100}}));
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));
    v1::CancelOrderRequest c;
    c.set_order_id(o.order_id());
    c.set_reason("customer changed their mind");
    auto asked = w.orders->Cancel(c, "sam");
    REQUIRE(asked.ok());
    CHECK(asked->cancel_requested());
    CHECK(asked->fulfilments(0).cancel_requested());
    CHECK(asked->status() == v1::ORDER_RELEASED);
    auto feed = w.Feed("S1");
    REQUIRE(feed.size() == 2);
    CHECK(feed[1].cancel().fulfilment_id() == o.fulfilments(0).fulfilment_id());
    CHECK(feed[1].cancel().reason() == "customer changed their mind");
    // Asking again does not ask the node twice.
    REQUIRE(w.orders->Cancel(c).ok());
    CHECK(w.Feed("S1").size() == 2);

    w.Send("S1", Upd(o, 0, v1::FULFILMENT_CANCELLED, "cancelled"));
    v1::Order now = w.Get(o.order_id());
    CHECK(now.status() == v1::ORDER_CANCELLED);
    CHECK(now.lines(0).cancelled() == 3);
    CHECK(Has(Events(now), "cancel_requested"));
    CHECK(Has(Events(now), "cancelled"));
    CHECK(w.Exceptions("cancel_after_ship", o.order_id()).empty());
    CHECK(w.orders->RunRoutingPass().value() == 0);
    // Cancelling a cancelled order is a no-op.
    CHECK(w.orders->Cancel(c)->status() == v1::ORDER_CANCELLED);
  }

  SECTION("the node had shipped: cancel_refused, shipped wins, exception cancel_after_ship") {
    v1::Order o = w.Capture(Req("web", "C-2", {{"A", 2, 100}}));
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_PICKED, "picked"));
    v1::CancelOrderRequest c;
    c.set_order_id(o.order_id());
    c.set_reason("fraud suspected");
    REQUIRE(w.orders->Cancel(c).ok());
    // Meanwhile the node shipped; then it answers the request.
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped"));
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_SHIPPED, "cancel_refused"));
    v1::Order now = w.Get(o.order_id());
    CHECK(now.status() == v1::ORDER_SHIPPED);
    CHECK(now.lines(0).shipped() == 2);
    CHECK(now.lines(0).cancelled() == 0);
    auto ex = w.Exceptions("cancel_after_ship", o.order_id());
    REQUIRE(ex.size() == 1);
    CHECK(ex[0].node_id() == "S1");
    CHECK(StrContains(ex[0].message(), "start a return"));
    // Everything shipped: too late.
    auto late = w.orders->Cancel(c);
    CHECK(late.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(StrContains(late.status().message(), "already shipped; start a return"));
  }

  SECTION("a node cancelling on its own hands the units back for re-routing elsewhere") {
    w.Receive("S2", "A", 5);
    v1::Order o = w.Capture(Req("web", "C-3", {{"A", 2, 100}}));
    CHECK(o.fulfilments(0).site() == "S1");
    w.Send("S1", Upd(o, 0, v1::FULFILMENT_CANCELLED, "cancelled"));
    CHECK(w.Get(o.order_id()).status() == v1::ORDER_BACKORDERED);
    CHECK(w.orders->RunRoutingPass().value() == 1);
    v1::Order now = w.Get(o.order_id());
    REQUIRE(now.fulfilments_size() == 2);
    CHECK(now.fulfilments(1).site() == "S2");
  }
}

TEST_CASE("unknown fulfilments and conflicts raise exceptions without stalling the stream",
          "[central-orders]") {
  World w;
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("O00000042-1");
  u.set_order_id("O00000042");
  u.set_status(v1::FULFILMENT_ACCEPTED);
  u.set_change("accepted");
  w.Send("S1", u);  // REQUIREs the mark to advance
  auto ex = w.Exceptions("unknown_fulfilment", "O00000042");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].node_id() == "S1");
  CHECK(ex[0].fulfilment_id() == "O00000042-1");

  // An update from a site the fulfilment was not released to.
  w.Receive("S1", "A", 5);
  v1::Order o = w.Capture(Req("web", "X-1", {{"A", 1, 100}}));
  w.Send("S2", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));
  CHECK(w.Exceptions("conflict", o.order_id()).size() == 1);
  CHECK(w.Get(o.order_id()).fulfilments(0).status() == v1::FULFILMENT_RELEASED);
}

TEST_CASE("a node-local sale creates a store order at central", "[central-orders]") {
  World w;
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("L-S2-1");
  u.set_order_id("L-S2-1");
  u.set_status(v1::FULFILMENT_SHIPPED);
  u.set_change("shipped");
  u.set_local_kind(v1::COUNTER_SALE);
  u.set_operator_id("till-3");
  auto* ll = u.add_local_lines();
  ll->set_sku("A");
  ll->set_quantity(2);
  ll->set_unit_price_cents(1500);
  auto* fl = u.add_lines();
  fl->set_line_no(1);
  fl->set_sku("A");
  fl->set_quantity(2);
  fl->set_picked(2);
  fl->set_shipped(2);
  w.Send("S2", u);
  v1::Order o = w.Get("L-S2-1");
  CHECK(o.channel() == "store");
  CHECK(o.local_site() == "S2");
  CHECK(o.status() == v1::ORDER_SHIPPED);
  CHECK(o.value_cents() == 3000);
  CHECK(o.shipped_ms() == w.NowMs());
  REQUIRE(o.lines_size() == 1);
  CHECK(o.lines(0).shipped() == 2);
  REQUIRE(o.fulfilments_size() == 1);
  CHECK(o.fulfilments(0).site() == "S2");
  CHECK(StrContains(o.history(0).detail(), "counter sale at S2 (by till-3)"));
  v1::ListOrdersRequest l;
  l.set_channel("store");
  CHECK(w.orders->List(l)->orders_size() == 1);

  // Click-and-collect: reserved now, handed out later by a second update.
  v1::FulfilmentUpdate c;
  c.set_fulfilment_id("L-S2-2");
  c.set_order_id("L-S2-2");
  c.set_status(v1::FULFILMENT_ACCEPTED);
  c.set_change("accepted");
  c.set_local_kind(v1::CLICK_AND_COLLECT);
  *c.add_local_lines() = *ll;
  fl = c.add_lines();
  fl->set_line_no(1);
  fl->set_sku("A");
  fl->set_quantity(2);
  fl->set_reserved(2);
  w.Send("S2", c);
  CHECK(w.Get("L-S2-2").status() == v1::ORDER_RELEASED);
  c.set_status(v1::FULFILMENT_SHIPPED);
  c.set_change("shipped");
  c.mutable_lines(0)->set_shipped(2);
  w.Send("S2", c);
  CHECK(w.Get("L-S2-2").status() == v1::ORDER_SHIPPED);
  CHECK(w.orders->RunRoutingPass().value() == 0);
}

TEST_CASE("exceptions are assigned and resolved", "[central-orders]") {
  World w;
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("Q-1");
  u.set_status(v1::FULFILMENT_ACCEPTED);
  w.Send("S1", u);
  REQUIRE(w.store->AddException("clock_ahead", "S2", "ahead", w.NowMs()).ok());
  v1::ListExceptionsRequest all;
  auto list = w.central->ListExceptions(all);
  REQUIRE(list->exceptions_size() == 2);
  const uint64_t id = w.Exceptions("unknown_fulfilment", "")[0].id();

  v1::ExceptionActionRequest a;
  a.set_id(id);
  CHECK(w.central->AssignException(a).status().code() == absl::StatusCode::kInvalidArgument);
  a.set_assignee("sam");
  auto assigned = w.central->AssignException(a);
  REQUIRE(assigned.ok());
  CHECK(assigned->assignee() == "sam");
  v1::ListExceptionsRequest mine;
  mine.set_assignee("sam");
  CHECK(w.central->ListExceptions(mine)->exceptions_size() == 1);

  v1::ExceptionActionRequest r;
  r.set_id(id);
  CHECK(w.central->ResolveException(r).status().code() == absl::StatusCode::kInvalidArgument);
  r.set_note("a test update");
  w.clock.Advance(kSecond);
  auto resolved = w.central->ResolveException(r);
  REQUIRE(resolved.ok());
  CHECK(resolved->resolved());
  CHECK(resolved->resolution_note() == "a test update");
  CHECK(resolved->resolved_at_ms() == w.NowMs());
  CHECK(w.central->ResolveException(r).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(w.central->AssignException(a).status().code() == absl::StatusCode::kFailedPrecondition);
  r.set_id(999);
  CHECK(w.central->ResolveException(r).status().code() == absl::StatusCode::kNotFound);

  // Open ones only, unless asked.
  CHECK(w.central->ListExceptions(all)->exceptions_size() == 1);
  all.set_include_resolved(true);
  CHECK(w.central->ListExceptions(all)->exceptions_size() == 2);
  // Sync exceptions keep merging repeats while open.
  REQUIRE(w.store->AddException("clock_ahead", "S2", "ahead", w.NowMs()).ok());
  v1::ListExceptionsRequest clock;
  clock.set_kind("clock_ahead");
  auto ca = w.central->ListExceptions(clock);
  REQUIRE(ca->exceptions_size() == 1);
  CHECK(ca->exceptions(0).count() == 2);
}

TEST_CASE("KPIs per site and channel on a known dataset", "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);
  w.Receive("S2", "A", 5);
  const int64_t t0 = w.NowMs();

  // K1: 2 units from S1, shipped after 60 s.
  v1::Order k1 = w.Capture(Req("web", "K-1", {{"A", 2, 100}}));
  w.clock.Advance(60 * kSecond);
  w.Send("S1", Upd(k1, 0, v1::FULFILMENT_SHIPPED, "shipped"));
  // K2 (captured at 60 s): 4 asked of S1, 1 shipped at 120 s, 3 shorted and shipped by S2 at
  // 180 s.
  v1::Order k2 = w.Capture(Req("web", "K-2", {{"A", 4, 100}}));
  REQUIRE(k2.fulfilments(0).site() == "S1");
  w.clock.Advance(60 * kSecond);
  auto s1 = Upd(k2, 0, v1::FULFILMENT_SHIPPED, "shipped");
  s1.mutable_lines(0)->set_short_quantity(3);
  s1.mutable_lines(0)->set_short_reason("damaged");
  s1.mutable_lines(0)->set_picked(1);
  s1.mutable_lines(0)->set_shipped(1);
  w.Send("S1", s1);
  REQUIRE(w.orders->RunRoutingPass().value() == 1);
  k2 = w.Get(k2.order_id());
  REQUIRE(k2.fulfilments(1).site() == "S2");
  w.clock.Advance(60 * kSecond);
  w.Send("S2", Upd(k2, 1, v1::FULFILMENT_SHIPPED, "shipped"));
  CHECK(w.Get(k2.order_id()).status() == v1::ORDER_SHIPPED);
  // K3: 1 unit released to S1, cancelled by the customer (not S1's fault).
  v1::Order k3 = w.Capture(Req("web", "K-3", {{"A", 1, 100}}));
  v1::CancelOrderRequest c;
  c.set_order_id(k3.order_id());
  REQUIRE(w.orders->Cancel(c).ok());
  w.Send("S1", Upd(k3, 0, v1::FULFILMENT_CANCELLED, "cancelled"));
  CHECK(w.Get(k3.order_id()).status() == v1::ORDER_CANCELLED);

  auto k = w.orders->Kpis({});
  REQUIRE(k.ok());
  INFO(k->DebugString());
  REQUIRE(k->by_site_size() == 2);
  const v1::KpiRow& r1 = k->by_site(0);
  CHECK(r1.site() == "S1");
  CHECK(r1.orders() == 2);
  CHECK(r1.units_requested() == 6);  // 2 + 4; K3's unit was the customer's cancellation
  CHECK(r1.units_shipped() == 3);
  CHECK(r1.fill_rate() == Approx(0.5));
  CHECK(r1.cycle_time_avg_s() == Approx(60));
  CHECK(r1.cycle_time_p50_s() == Approx(60));
  CHECK(r1.cycle_time_p90_s() == Approx(60));
  const v1::KpiRow& r2 = k->by_site(1);
  CHECK(r2.site() == "S2");
  CHECK(r2.orders() == 1);
  CHECK(r2.units_requested() == 3);
  CHECK(r2.units_shipped() == 3);
  CHECK(r2.fill_rate() == Approx(1.0));
  CHECK(r2.cycle_time_avg_s() == Approx(120));
  REQUIRE(k->by_channel_size() == 1);
  const v1::KpiRow& web = k->by_channel(0);
  CHECK(web.channel() == "web");
  CHECK(web.orders() == 2);
  CHECK(web.units_requested() == 6);  // 2 + 4 + 1 - 1 cancelled
  CHECK(web.units_shipped() == 6);
  CHECK(web.fill_rate() == Approx(1.0));
  CHECK(web.cycle_time_avg_s() == Approx(90));
  CHECK(web.cycle_time_p50_s() == Approx(60));
  CHECK(web.cycle_time_p90_s() == Approx(120));

  // The window is on capture time: only K2.
  v1::KpiRequest window;
  window.set_from_ms(t0 + 60'000);
  window.set_to_ms(t0 + 61'000);
  auto only = w.orders->Kpis(window);
  REQUIRE(only.ok());
  REQUIRE(only->by_channel_size() == 1);
  CHECK(only->by_channel(0).orders() == 1);
  CHECK(only->by_channel(0).cycle_time_avg_s() == Approx(120));
  window.set_to_ms(1);
  CHECK(w.orders->Kpis(window).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("channels and kits import: all rows or none, errors name lines", "[central-orders]") {
  World w;
  auto bad = w.store->Import("channels",
                             "id,name,site_priority,allow_split,review_above_cents\n"
                             "web2,Web,S1|S9,true,0\nok,Ok,S1,false,0\n");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(StrContains(bad.status().message(), "line 2: channel 'web2' names unknown site 'S9'"));
  bad = w.store->Import("channels", "id,allow_split\nx,maybe\n");
  CHECK(StrContains(bad.status().message(), "line 2: allow_split"));
  bad = w.store->Import("kits", "kit_sku,component_sku,quantity\nK2,A,1\nK2,NOPE,1\n");
  CHECK(StrContains(bad.status().message(), "line 3: kit 'K2' names unknown SKU 'NOPE'"));
  bad = w.store->Import("kits", "kit_sku,component_sku,quantity\nK3,KIT,1\n");
  CHECK(StrContains(bad.status().message(), "is itself a kit"));
  bad = w.store->Import("kits", "kit_sku,component_sku,quantity\nK4,A,0\n");
  CHECK(StrContains(bad.status().message(), "line 2: quantity"));

  auto ch = w.central->ListChannels();
  REQUIRE(ch.ok());
  REQUIRE(ch->channels_size() == 3);  // any, market, web: nothing of the bad files
  CHECK(ch->channels(0).id() == "any");
  CHECK(ch->channels(1).id() == "market");
  REQUIRE(ch->channels(1).site_priority_size() == 2);
  CHECK(ch->channels(1).site_priority(0) == "S2");
  CHECK_FALSE(ch->channels(1).allow_split());
  CHECK(ch->channels(1).review_above_cents() == 100000);
  CHECK(ch->channels(2).version() == 1);
  REQUIRE(ch->kits_size() == 2);
  CHECK(ch->kits(0).component_sku() == "A");
  CHECK(ch->kits(0).quantity() == 2);

  // Re-import replaces a channel (new version) and a kit's components; nothing goes to nodes.
  const size_t feed_before = w.store->ReadFeed("S1", 0, 100000)->size();
  REQUIRE(w.store->Import("channels", "id,site_priority,allow_split\nweb,S2,false\n").ok());
  REQUIRE(w.store->Import("kits", "kit_sku,component_sku,quantity\nKIT,B,3\n").ok());
  CHECK(w.store->ReadFeed("S1", 0, 100000)->size() == feed_before);
  ch = w.central->ListChannels();
  CHECK(ch->channels(2).version() == 2);
  CHECK(ch->channels(2).site_priority(0) == "S2");
  REQUIRE(ch->kits_size() == 1);
  CHECK(ch->kits(0).component_sku() == "B");

  v1::ImportRequest imp;
  imp.set_kind("kits");
  imp.set_csv("kit_sku,component_sku,quantity\nKIT,A,1\n");
  CHECK(w.central->Import(imp).ok());
  imp.set_kind("widgets");
  CHECK(w.central->Import(imp).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a restore reverses stock events but keeps fulfilment updates", "[central-orders]") {
  World w;
  w.Receive("S1", "A", 10);  // seq 1 (receipt), 2 (grant)
  v1::Order o = w.Capture(Req("web", "R-1", {{"A", 2, 100}}));
  w.Send("S1", Upd(o, 0, v1::FULFILMENT_ACCEPTED, "accepted"));  // seq 3
  w.Apply("S1", World::Movement(v1::RECEIPT, "A", 3));           // seq 4
  // The node comes back from a backup taken after seq 2.
  auto reversed = w.store->BeginEpoch("S1", 8, 2);
  REQUIRE(reversed.ok());
  CHECK(*reversed == 1);  // the receipt of 3; the fulfilment update is not undone
  CHECK(w.store->NetworkStock("A", "S1")->items(0).on_hand() == 10);
  CHECK(w.Get(o.order_id()).fulfilments(0).status() == v1::FULFILMENT_ACCEPTED);
  // Both lost events left the node's chain: the digest counts only what the node still has.
  CHECK(w.store->EventDigest("S1")->second == 2);
}
