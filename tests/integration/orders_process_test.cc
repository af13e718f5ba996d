// End-to-end order workflow with real processes: a depot-central and two depot-nodes on loopback.
// Orders are captured at central, routed and released through the sync feed, waved, picked,
// packed and shipped at a node, and seen shipped at central; the same with the node and central
// offline for parts of the flow; cancellation racing shipment in both orders; a short pick that
// re-routes to the other site; and bad input refused with nothing changed.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "depot/v1/orders.pb.h"
#include "tests/integration/cluster_util.h"

namespace depot::testing {
namespace {

constexpr auto kFlowTimeout = std::chrono::seconds(20);

// Two sites in different regions, the sample SKUs, three bins each, two channels:
// "web" (S1 then S2, splits allowed) and "market" (S2 then S1, no splits, review above 1000.00).
void ImportOrderMasterData(const CentralProcess& central, const std::string& dir) {
  ImportTwoSites(central, dir,
                 "S1,East warehouse,warehouse,east\n"
                 "S2,West store,store,west\n",
                 "web,Web shop,S1|S2,true,0\n"
                 "market,Marketplace,S2|S1,false,100000\n");
}

v1::ReceiptRequest LotReceipt(const std::string& sku, const std::string& bin, int64_t qty,
                              const std::string& lot, const std::string& expiry) {
  v1::ReceiptRequest r = Receipt(sku, bin, qty);
  r.set_lot(lot);
  r.set_expiry(expiry);
  return r;
}

int64_t BinOnHand(Http& node, const std::string& sku, const std::string& bin) {
  auto stock = node.GetOk<v1::StockResponse>(absl::StrCat("/v1/stock?sku=", sku));
  int64_t n = 0;
  for (const auto& b : stock.balances()) {
    if (b.bin() == bin) n += b.on_hand();
  }
  return n;
}

// The cluster every test case starts with: central with the order master data, S1 and S2.
Cluster OrderCluster(const std::string& prefix) { return Cluster(prefix, ImportOrderMasterData); }

// ---------------------------------------------------------------------------------------------

TEST_CASE("an order is captured, routed, picked, packed and shipped, and central sees it shipped",
          "[integration][orders]") {
  Cluster cl = OrderCluster("depot-orders-flow-");
  Http c(cl.central->url()), h1(cl.s1->url()), h2(cl.s2->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA2, 10));
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 5));
  h1.WriteOk("/v1/receipts", LotReceipt(sample::kLot, sample::kBinA1, 4, "L2", "2091-01-01"));
  h1.WriteOk("/v1/receipts", LotReceipt(sample::kLot, sample::kBinB1, 3, "L1", "2090-01-01"));
  h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 20));
  RequireConverged(c, h1, "S1");
  RequireConverged(c, h2, "S2");

  // East ship-to, both sites could fill the widgets but only S1 has milk: one shipment from S1.
  v1::Order o = Capture(c, NewOrder("web", "E-1", "east", {{sample::kPlain, 12}, {sample::kLot, 5}}));
  REQUIRE(o.fulfilments_size() == 1);
  const v1::Fulfilment& routed = o.fulfilments(0);
  CHECK(routed.site() == "S1");
  INFO("reason: " << routed.reason());
  CHECK(absl::StrContains(routed.reason(), "S1"));
  const std::string fid = routed.fulfilment_id();

  // Capturing the same external order again gives the same order.
  {
    auto again = Parse<v1::CaptureOrderResponse>(
        PostOk(c, "/v1/orders", NewOrder("web", "E-1", "east", {{sample::kPlain, 12}, {sample::kLot, 5}})));
    CHECK(again.replayed());
    CHECK(again.order().order_id() == o.order_id());
  }

  v1::NodeFulfilment nf = WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED);
  for (const auto& l : nf.lines()) CHECK(l.reserved() == l.quantity());
  WaitOrder(c, o.order_id(), v1::ORDER_RELEASED);

  // The wave's pick list walks the bins in order and takes the earliest-expiring milk first.
  v1::Wave wave = MakeWave(h1);
  INFO(MessageToJson(wave));
  REQUIRE(wave.tasks_size() >= 4);
  for (int i = 1; i < wave.tasks_size(); ++i) {
    CHECK(wave.tasks(i - 1).walk_order() <= wave.tasks(i).walk_order());
  }
  std::map<std::string, int64_t> milk_by_lot;
  for (const auto& t : wave.tasks()) {
    if (t.sku() == sample::kLot) milk_by_lot[t.lot()] += t.quantity();
  }
  CHECK(milk_by_lot["L1"] == 3);  // all of the lot expiring first
  CHECK(milk_by_lot["L2"] == 2);

  // Pick: the widget by its GTIN (barcode), the first task through depotctl.
  bool first = true;
  for (const auto& t : wave.tasks()) {
    const std::string item = t.sku() == sample::kPlain ? "4006381333931" : t.sku();
    if (first) {
      std::vector<std::string> args = {"pick", fid, "--bin", t.bin(), "--item", item,
                                       "--qty", std::to_string(t.quantity())};
      if (!t.lot().empty()) args.insert(args.end(), {"--lot", t.lot()});
      ProcessResult r = CtlNode(*cl.s1, args);
      INFO(r.out << r.err);
      REQUIRE(r.exit_code == 0);
      first = false;
      continue;
    }
    v1::PickRequest p;
    p.set_fulfilment_id(fid);
    p.set_bin(t.bin());
    p.set_item(item);
    p.set_lot(t.lot());
    p.set_quantity(t.quantity());
    PostOk(h1, "/v1/picks", p);
  }
  WaitFulfilment(h1, fid, v1::FULFILMENT_PICKED);

  // Shipping before packing is refused and changes nothing.
  {
    v1::ShipRequest early;
    early.set_fulfilment_id(fid);
    early.set_carrier("UPS");
    early.set_tracking("1Z-EARLY");
    PostStatus(h1, "/v1/shipments", early, 409);
    CHECK(WaitFulfilment(h1, fid, v1::FULFILMENT_PICKED).tracking().empty());
  }
  {
    v1::PackRequest pack;
    pack.set_fulfilment_id(fid);
    auto* p = pack.add_packages();
    p->set_weight_g(2500);
    p->set_length_mm(400);
    p->set_width_mm(300);
    p->set_height_mm(200);
    PostOk(h1, "/v1/packs", pack);
  }
  {
    ProcessResult r = CtlNode(*cl.s1, {"ship", fid, "--carrier", "UPS", "--tracking", "1Z-0001"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }

  v1::Order shipped = WaitOrder(c, o.order_id(), v1::ORDER_SHIPPED);
  REQUIRE(shipped.fulfilments_size() == 1);
  CHECK(shipped.fulfilments(0).tracking() == "1Z-0001");
  CHECK(shipped.fulfilments(0).carrier() == "UPS");
  CHECK(shipped.fulfilments(0).packages_size() == 1);
  for (const auto& l : shipped.lines()) CHECK(l.shipped() == l.quantity());
  std::vector<std::string> events;
  for (const auto& h : shipped.history()) events.push_back(h.event());
  INFO(MessageToJson(shipped));
  for (const char* e : {"captured", "routed", "released", "accepted", "picked", "packed", "shipped"}) {
    CHECK(std::count(events.begin(), events.end(), e) >= 1);
  }
  // The stock left S1 (3 widgets remain, nothing in staging) and central's mirror agrees.
  CHECK(NodeOnHand(h1, sample::kPlain) == 3);
  CHECK(NodeOnHand(h1, sample::kLot) == 2);
  RequireConverged(c, h1, "S1");
  auto verify = h1.GetOk<v1::VerifyResponse>("/v1/verify");
  CHECK(verify.ok());

  // Delivery confirmation, then the KPIs count it.
  {
    v1::DeliveryRequest d;
    d.set_fulfilment_id(fid);
    PostOk(c, absl::StrCat("/v1/orders/", o.order_id(), "/delivery"), d);
    CHECK(GetOrder(c, o.order_id()).status() == v1::ORDER_DELIVERED);
  }
  auto kpis = c.GetOk<v1::KpiResponse>("/v1/kpis");
  INFO(MessageToJson(kpis));
  bool s1_row = false;
  for (const auto& row : kpis.by_site()) {
    if (row.site() != "S1") continue;
    s1_row = true;
    CHECK(row.orders() == 1);
    CHECK(row.fill_rate() == Approx(1.0));
    CHECK(row.cycle_time_avg_s() > 0);
  }
  CHECK(s1_row);

  // A counter sale at the store is committed locally and recorded at central.
  {
    v1::LocalOrderRequest sale;
    sale.set_kind(v1::COUNTER_SALE);
    auto* l = sale.add_lines();
    l->set_sku(sample::kPlain);
    l->set_quantity(2);
    l->set_unit_price_cents(1500);
    auto f = Parse<v1::NodeFulfilment>(PostOk(h2, "/v1/local-orders", sale));
    CHECK(f.status() == v1::FULFILMENT_SHIPPED);
    v1::Order store_order = WaitOrder(c, f.order_id(), v1::ORDER_SHIPPED);
    CHECK(store_order.local_site() == "S2");
    CHECK(NodeOnHand(h2, sample::kPlain) == 18);
  }
}

TEST_CASE("orders flow while the node and central are offline for parts of the flow",
          "[integration][orders]") {
  Cluster cl = OrderCluster("depot-orders-offline-");
  Http c(cl.central->url()), h1(cl.s1->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 10));
  RequireConverged(c, h1, "S1");

  // S1 is down when the order is captured: it is still routed there (S2 has nothing) and the
  // release waits in S1's feed.
  CHECK(cl.s1->Stop() == 0);
  v1::Order o = Capture(c, NewOrder("web", "OFF-1", "east", {{sample::kPlain, 4}}));
  REQUIRE(o.fulfilments_size() == 1);
  CHECK(o.fulfilments(0).site() == "S1");
  const std::string fid = o.fulfilments(0).fulfilment_id();
  REQUIRE(cl.s1->Start().ok());
  Http n1(cl.s1->url());
  WaitFulfilment(n1, fid, v1::FULFILMENT_ACCEPTED);

  // Central goes down; the node picks, packs and ships on its own.
  cl.central->Kill(SIGKILL);
  v1::Wave wave = MakeWave(n1);
  PickAll(n1, wave, fid, [](const std::string& sku) { return sku; });
  PackAndShip(n1, fid, "1Z-OFFLINE");
  CHECK(WaitFulfilment(n1, fid, v1::FULFILMENT_SHIPPED).tracking() == "1Z-OFFLINE");

  // Central comes back and learns the shipment from the node's outbox.
  REQUIRE(cl.central->Start().ok());
  Http c2(cl.central->url());
  v1::Order shipped = WaitOrder(c2, o.order_id(), v1::ORDER_SHIPPED);
  CHECK(shipped.fulfilments(0).tracking() == "1Z-OFFLINE");
  RequireConverged(c2, n1, "S1");
}

TEST_CASE("cancel racing ship: the node decides, in both orders", "[integration][orders]") {
  Cluster cl = OrderCluster("depot-orders-cancel-");
  Http c(cl.central->url()), h1(cl.s1->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 10));
  RequireConverged(c, h1, "S1");

  SECTION("cancel reaches the node before it ships: cancelled, picked goods back in their bin") {
    v1::Order o = Capture(c, NewOrder("web", "C-1", "east", {{sample::kPlain, 3}}));
    const std::string fid = o.fulfilments(0).fulfilment_id();
    WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED);
    v1::Wave wave = MakeWave(h1);
    PickAll(h1, wave, fid, [](const std::string& sku) { return sku; });
    WaitFulfilment(h1, fid, v1::FULFILMENT_PICKED);
    CHECK(BinOnHand(h1, sample::kPlain, sample::kBinA1) == 7);

    v1::CancelOrderRequest cancel;
    cancel.set_reason("customer changed their mind");
    PostOk(c, absl::StrCat("/v1/orders/", o.order_id(), "/cancel"), cancel);
    WaitFulfilment(h1, fid, v1::FULFILMENT_CANCELLED);
    CHECK(BinOnHand(h1, sample::kPlain, sample::kBinA1) == 10);
    auto atp = h1.GetOk<v1::AtpResponse>(absl::StrCat("/v1/atp/", sample::kPlain));
    CHECK(atp.items(0).reserved() == 0);

    // The ship that comes too late is refused.
    v1::ShipRequest ship;
    ship.set_fulfilment_id(fid);
    ship.set_carrier("UPS");
    ship.set_tracking("1Z-LATE");
    PostStatus(h1, "/v1/shipments", ship, 409);
    v1::Order done = WaitOrder(c, o.order_id(), v1::ORDER_CANCELLED);
    CHECK_FALSE(HasException(c, "cancel_after_ship", o.order_id()));
    RequireConverged(c, h1, "S1");
  }

  SECTION("the node ships before the cancel reaches it: shipped, exception cancel after ship") {
    v1::Order o = Capture(c, NewOrder("web", "C-2", "east", {{sample::kPlain, 2}}));
    const std::string fid = o.fulfilments(0).fulfilment_id();
    WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED);
    WaitOrder(c, o.order_id(), v1::ORDER_RELEASED);

    // Cut S1 off (restart it without --central) and ship there.
    CHECK(cl.s1->Stop() == 0);
    NodeProcess offline(cl.s1->db_path(), "S1");
    REQUIRE(offline.Start().ok());
    Http off(offline.url());
    v1::Wave wave = MakeWave(off);
    PickAll(off, wave, fid, [](const std::string& sku) { return sku; });
    PackAndShip(off, fid, "1Z-RACE");

    // Meanwhile central asks to cancel: it cannot know yet, so it asks the node.
    v1::CancelOrderRequest cancel;
    cancel.set_reason("fraud suspected");
    auto asked = Parse<v1::Order>(PostOk(c, absl::StrCat("/v1/orders/", o.order_id(), "/cancel"), cancel));
    CHECK(asked.cancel_requested());
    CHECK(offline.Stop() == 0);

    // The link returns: the node refuses (it shipped), central keeps the order shipped and
    // raises the exception.
    REQUIRE(cl.s1->Start().ok());
    Http back(cl.s1->url());
    WaitOrder(c, o.order_id(), v1::ORDER_SHIPPED);
    CHECK(Eventually([&] { return HasException(c, "cancel_after_ship", o.order_id()); },
                     kFlowTimeout));
    CHECK(WaitFulfilment(back, fid, v1::FULFILMENT_SHIPPED).cancel_requested());
    RequireConverged(c, back, "S1");
  }
}

TEST_CASE("a short pick hands the rest back to central, which re-routes it to the other site",
          "[integration][orders]") {
  Cluster cl = OrderCluster("depot-orders-short-");
  Http c(cl.central->url()), h1(cl.s1->url()), h2(cl.s2->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 5));
  h2.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinB1, 5));
  RequireConverged(c, h1, "S1");
  RequireConverged(c, h2, "S2");

  v1::Order o = Capture(c, NewOrder("web", "S-1", "east", {{sample::kPlain, 4}}));
  REQUIRE(o.fulfilments_size() == 1);
  CHECK(o.fulfilments(0).site() == "S1");
  const std::string f1 = o.fulfilments(0).fulfilment_id();
  WaitFulfilment(h1, f1, v1::FULFILMENT_ACCEPTED);
  v1::Wave wave = MakeWave(h1);
  // One unit is found, the other three are not where the system says.
  v1::PickRequest p;
  p.set_fulfilment_id(f1);
  p.set_bin(sample::kBinA1);
  p.set_item(sample::kPlain);
  p.set_quantity(1);
  PostOk(h1, "/v1/picks", p);
  {
    ProcessResult r = CtlNode(*cl.s1, {"short", f1, "--line", "1", "--reason", "not_found"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }
  PackAndShip(h1, f1, "1Z-PART");

  // Central re-routes the 3 missing units to S2.
  v1::Order rerouted;
  bool ok = Eventually(
      [&] {
        rerouted = GetOrder(c, o.order_id());
        return rerouted.fulfilments_size() == 2;
      },
      kFlowTimeout);
  INFO(MessageToJson(rerouted));
  REQUIRE(ok);
  const v1::Fulfilment& second = rerouted.fulfilments(1);
  CHECK(second.site() == "S2");
  REQUIRE(second.lines_size() == 1);
  CHECK(second.lines(0).quantity() == 3);
  CHECK(Eventually([&] { return HasException(c, "short_pick", o.order_id()); }, kFlowTimeout));

  WaitFulfilment(h2, second.fulfilment_id(), v1::FULFILMENT_ACCEPTED);
  v1::Wave w2 = MakeWave(h2);
  PickAll(h2, w2, second.fulfilment_id(), [](const std::string& sku) { return sku; });
  PackAndShip(h2, second.fulfilment_id(), "1Z-REST", /*one_step=*/true);
  v1::Order done = WaitOrder(c, o.order_id(), v1::ORDER_SHIPPED);
  REQUIRE(done.fulfilments_size() == 2);
  CHECK(done.fulfilments(1).packages_size() == 1);
  CHECK(done.fulfilments(1).tracking() == "1Z-REST");
  REQUIRE(done.lines_size() == 1);
  CHECK(done.lines(0).shipped() == 4);

  // The exception is worked: assigned and resolved with a note.
  auto list = c.GetOk<v1::ListExceptionsResponse>(
      absl::StrCat("/v1/exceptions?kind=short_pick&order_id=", o.order_id()));
  REQUIRE(list.exceptions_size() >= 1);
  const v1::ExceptionEntry& e = list.exceptions(0);
  CHECK(e.node_id() == "S1");
  CHECK(e.sku() == sample::kPlain);
  CtlCentral(*cl.central, {"central", "exceptions", "assign", std::to_string(e.id()), "--to", "sam"});
  CtlCentral(*cl.central, {"central", "exceptions", "resolve", std::to_string(e.id()), "--note",
                           "counted bin A-01, 3 missing, adjusted"});
  auto open = c.GetOk<v1::ListExceptionsResponse>(
      absl::StrCat("/v1/exceptions?kind=short_pick&order_id=", o.order_id()));
  CHECK(open.exceptions_size() == list.exceptions_size() - 1);
}

TEST_CASE("bad orders and out-of-order actions are refused and change nothing",
          "[integration][orders]") {
  Cluster cl = OrderCluster("depot-orders-bad-");
  Http c(cl.central->url()), h1(cl.s1->url());
  h1.WriteOk("/v1/receipts", Receipt(sample::kPlain, sample::kBinA1, 10));
  RequireConverged(c, h1, "S1");
  auto count = [&] { return c.GetOk<v1::ListOrdersResponse>("/v1/orders").orders_size(); };
  const int before = count();

  PostStatus(c, "/v1/orders", NewOrder("web", "B-1", "east", {{"NO-SUCH-SKU", 1}}), 404);
  PostStatus(c, "/v1/orders", NewOrder("nowhere", "B-2", "east", {{sample::kPlain, 1}}), 404);
  PostStatus(c, "/v1/orders", NewOrder("web", "B-3", "east", {{sample::kPlain, 0}}), 400);
  PostStatus(c, "/v1/orders", NewOrder("web", "B-4", "east", {}), 400);
  CHECK(c.Send("POST", "/v1/orders", "{\"channel\":\"web\",\"bogus\":1}").status == 400);
  CHECK(c.Send("POST", "/v1/orders", "not json").status == 400);
  CHECK(count() == before);

  // The same external id with different content is a conflict.
  v1::Order o = Capture(c, NewOrder("web", "B-5", "east", {{sample::kPlain, 1}}));
  PostStatus(c, "/v1/orders", NewOrder("web", "B-5", "east", {{sample::kPlain, 2}}), 409);
  CHECK(count() == before + 1);
  CHECK(GetOrder(c, o.order_id()).lines(0).quantity() == 1);
  CHECK(c.Send("GET", "/v1/orders/O99999999").status == 404);

  // A marketplace order worth more than the review threshold waits in review.
  v1::CaptureOrderRequest big = NewOrder("market", "M-1", "west", {{sample::kPlain, 2}});
  big.mutable_lines(0)->set_unit_price_cents(90000);
  v1::Order held = Capture(c, big);
  CHECK(held.status() == v1::ORDER_ON_HOLD);
  CHECK_FALSE(held.hold_reason().empty());
  CHECK(held.fulfilments_size() == 0);
  v1::ReviewOrderRequest approve;
  approve.set_approve(true);
  approve.set_note("called the customer");
  v1::Order approved = Parse<v1::Order>(
      PostOk(c, absl::StrCat("/v1/orders/", held.order_id(), "/review"), approve));
  CHECK(approved.status() != v1::ORDER_ON_HOLD);
  REQUIRE(approved.fulfilments_size() == 1);
  CHECK(approved.fulfilments(0).site() == "S1");  // S2 (first for market) has no stock
  PostStatus(c, absl::StrCat("/v1/orders/", held.order_id(), "/review"), approve, 409);

  // At the node: ship, pack or pick out of order, unknown fulfilment, more than ordered.
  const std::string fid = o.fulfilments(0).fulfilment_id();
  WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED);
  // The approved order's release reserves stock at S1 too: wait for it before taking the mark.
  WaitFulfilment(h1, approved.fulfilments(0).fulfilment_id(), v1::FULFILMENT_ACCEPTED);
  const uint64_t last_seq = h1.GetOk<v1::NodeStatus>("/v1/status").last_seq();
  v1::ShipRequest ship;
  ship.set_fulfilment_id(fid);
  ship.set_carrier("UPS");
  ship.set_tracking("1Z");
  PostStatus(h1, "/v1/shipments", ship, 409);
  v1::PackRequest pack;
  pack.set_fulfilment_id(fid);
  auto* pk = pack.add_packages();
  pk->set_weight_g(100);
  pk->set_length_mm(1);
  pk->set_width_mm(1);
  pk->set_height_mm(1);
  PostStatus(h1, "/v1/packs", pack, 409);
  v1::PickRequest pick;
  pick.set_fulfilment_id(fid);
  pick.set_bin(sample::kBinA1);
  pick.set_item(sample::kPlain);
  pick.set_quantity(5);
  PostStatus(h1, "/v1/picks", pick, 409);
  pick.set_fulfilment_id("O00000000-9");
  pick.set_quantity(1);
  PostStatus(h1, "/v1/picks", pick, 404);
  CHECK(h1.GetOk<v1::NodeStatus>("/v1/status").last_seq() == last_seq);
  CHECK(WaitFulfilment(h1, fid, v1::FULFILMENT_ACCEPTED).lines(0).picked() == 0);
}

}  // namespace
}  // namespace depot::testing
