// Receiving against purchase orders with real processes (docs/OPERATIONS.md "Receiving against
// purchase orders"): a depot-central and two nodes on loopback.
//   - A PO created at central (depotctl) reaches its site in the feed, and only that site.
//   - The site receives part of it while central is down (put-away suggestion, no bin named);
//     after central returns it shows the received quantity and status from the events.
//   - An over-receipt is refused (409 naming the line and the maximum) and changes nothing.
//   - The rest is received; central shows the PO received; a close is then refused.
//   - A CSV import with a bad line is refused naming it, and imports nothing.
//   - Put-away suggestions over HTTP and depotctl.
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "depot/v1/purchasing.pb.h"
#include "tests/integration/cluster_util.h"

namespace depot::testing {
namespace {

void ImportWarehouses(const CentralProcess& central, const std::string& dir) {
  ImportTwoSites(central, dir, "S1,East,warehouse,east\nS2,West,warehouse,west\n",
                 "web,Web shop,S1|S2,true,0\n");
}

// Waits until central's PO satisfies pred; returns it.
v1::PurchaseOrder WaitCentralPo(Http& central, const std::string& id,
                                const std::function<bool(const v1::PurchaseOrder&)>& pred) {
  v1::PurchaseOrder po;
  bool ok = Eventually(
      [&] {
        auto r = central.TrySend("GET", "/v1/purchase-orders/" + id);
        if (!r.ok() || r->status != 200) return false;
        po = Parse<v1::PurchaseOrder>(r->body);
        return pred(po);
      },
      kConvergeTimeout);
  INFO("central's PO: " << MessageToJson(po));
  REQUIRE(ok);
  return po;
}

}  // namespace

TEST_CASE("purchasing: PO from central, offline receipt, rules, CSV import, put-away",
          "[integration][purchasing]") {
  Cluster c("depot-purchasing-", ImportWarehouses);
  Http central(c.central->url()), s1(c.s1->url()), s2(c.s2->url());
  const std::string widget = sample::kPlain, milk = sample::kLot;

  // A PO for S1, created with depotctl.
  const std::string created =
      CtlCentral(*c.central, {"central", "po", "create", "PO-100", "--supplier", "ACME",
                              "--site", "S1", "--line", widget + ":10", "--line", milk + ":4",
                              "--expected", "2096-12-24"});
  auto po = Parse<v1::PurchaseOrder>(created);
  CHECK(po.status() == v1::PO_OPEN);
  CHECK(po.version() == 1);

  // It reaches S1's feed, and not S2's.
  REQUIRE(Eventually([&] { return s1.Send("GET", "/v1/purchase-orders/PO-100").status == 200; },
                     kConvergeTimeout));
  CHECK(s2.Send("GET", "/v1/purchase-orders/PO-100").status == 404);
  auto listed = CtlNode(*c.s1, {"po", "list"});
  REQUIRE(listed.exit_code == 0);
  CHECK_THAT(listed.out, Catch::Contains("PO-100"));

  // Central goes down; S1 receives part of the PO anyway, the bin from the put-away suggestion.
  REQUIRE(c.central->Stop() == 0);
  auto received = CtlNode(*c.s1, {"po", "receive", "PO-100", widget, "6"});
  INFO(received.err);
  REQUIRE(received.exit_code == 0);
  auto result = Parse<v1::ReceivePoResult>(received.out);
  REQUIRE(result.putaway_size() == 1);
  CHECK(result.putaway(0).bin() == sample::kBinA1);  // every bin empty: the first by walk order
  CHECK(result.putaway(0).reason() == "empty_bin");
  CHECK(result.purchase_order().status() == v1::PO_PARTIALLY_RECEIVED);
  CHECK(NodeOnHand(s1, widget) == 6);

  // Central returns and learns the receipt from the event stream.
  REQUIRE(c.central->Start().ok());
  po = WaitCentralPo(central, "PO-100",
                     [](const v1::PurchaseOrder& p) { return p.lines(0).received() == 6; });
  CHECK(po.status() == v1::PO_PARTIALLY_RECEIVED);
  CHECK(po.lines(1).received() == 0);

  // Over-receipt (tolerance 0): refused naming the line and the maximum; nothing changes.
  v1::ReceivePoRequest over;
  auto* l = over.add_lines();
  l->set_sku(widget);
  l->set_quantity(5);
  l->set_bin(sample::kBinA2);
  const std::string body = PostStatus(s1, "/v1/purchase-orders/PO-100/receive", over, 409);
  CHECK_THAT(body, Catch::Contains("FAILED_PRECONDITION"));
  CHECK_THAT(body, Catch::Contains("line 1"));
  CHECK_THAT(body, Catch::Contains("at most 10"));
  CHECK(NodeOnHand(s1, widget) == 6);
  CHECK(s1.GetOk<v1::PurchaseOrder>("/v1/purchase-orders/PO-100").lines(0).received() == 6);
  // Other refusals: a SKU not on the PO (400), an unknown PO (404), the PO at the wrong site.
  l->set_sku(sample::kSafety);
  l->set_quantity(1);
  PostStatus(s1, "/v1/purchase-orders/PO-100/receive", over, 400);
  PostStatus(s1, "/v1/purchase-orders/PO-404/receive", over, 404);
  PostStatus(s2, "/v1/purchase-orders/PO-100/receive", over, 404);

  // The rest, both lines in one request (the lot-tracked SKU with its lot and expiry); the same
  // request_id again is a replay (200) that writes nothing.
  v1::ReceivePoRequest rest;
  rest.set_request_id("dock-7");
  l = rest.add_lines();
  l->set_sku(widget);
  l->set_quantity(4);
  l = rest.add_lines();
  l->set_sku(milk);
  l->set_quantity(4);
  l->set_lot("L-77");
  l->set_expiry("2097-01-31");
  l->set_bin(sample::kBinB1);
  PostStatus(s1, "/v1/purchase-orders/PO-100/receive", rest, 201);
  PostStatus(s1, "/v1/purchase-orders/PO-100/receive", rest, 200);
  CHECK(NodeOnHand(s1, widget) == 10);
  CHECK(NodeOnHand(s1, milk) == 4);
  po = WaitCentralPo(central, "PO-100",
                     [](const v1::PurchaseOrder& p) { return p.status() == v1::PO_RECEIVED; });
  CHECK(po.lines(0).received() == 10);
  CHECK(po.lines(1).received() == 4);
  RequireConverged(central, s1, "S1");
  v1::PurchaseOrderActionRequest close;
  PostStatus(central, "/v1/purchase-orders/PO-100/close", close, 409);

  // A CSV import with a bad line is refused naming it; nothing is imported.
  REQUIRE(WriteFile(c.dir + "/pos.csv",
                    "po,supplier,site,expected_date,line,sku,quantity\n"
                    "PO-200,ACME,S2,2096-12-01,1," + widget + ",5\n"
                    "PO-200,ACME,S2,2096-12-01,2," + milk + ",many\n"
                    "PO-201,ACME,S2,,1," + widget + ",3\n")
              .ok());
  std::vector<std::string> argv = {kCtlBin, "--operator", kOperator, "--central", c.central->url(),
                                   "central", "po", "import", c.dir + "/pos.csv"};
  ProcessResult bad = RunProcess(argv);
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("line 3: quantity 'many'"));
  CHECK(central.GetOk<v1::ListPurchaseOrdersResponse>("/v1/purchase-orders?site=S2")
            .purchase_orders_size() == 0);
  // Fixed, it imports both POs, and they reach S2.
  REQUIRE(WriteFile(c.dir + "/pos.csv",
                    "po,supplier,site,expected_date,line,sku,quantity\n"
                    "PO-200,ACME,S2,2096-12-01,1," + widget + ",5\n"
                    "PO-201,ACME,S2,,1," + widget + ",3\n")
              .ok());
  const std::string imported = CtlCentral(*c.central, {"central", "po", "import", c.dir + "/pos.csv"});
  CHECK(Parse<v1::ImportPurchaseOrdersResponse>(imported).purchase_orders() == 2);
  REQUIRE(Eventually(
      [&] {
        return s2.GetOk<v1::ListPurchaseOrdersResponse>("/v1/purchase-orders")
                   .purchase_orders_size() == 2;
      },
      kConvergeTimeout));

  // Put-away: S1 holds the widget in A-01; S2 has nothing, so its first empty bin.
  auto put = s1.GetOk<v1::PutawaySuggestion>("/v1/putaway?sku=" + widget + "&quantity=3");
  CHECK(put.bin() == sample::kBinA1);
  CHECK(put.reason() == "holds_sku");
  CHECK(put.on_hand() == 10);
  auto ctl = CtlNode(*c.s2, {"putaway", widget});
  REQUIRE(ctl.exit_code == 0);
  put = Parse<v1::PutawaySuggestion>(ctl.out);
  CHECK(put.bin() == sample::kBinA1);
  CHECK(put.reason() == "empty_bin");
  CHECK(s1.Send("GET", "/v1/putaway?sku=NOPE").status == 404);
  CHECK(s1.Send("GET", "/v1/putaway").status == 400);
}

}  // namespace depot::testing
