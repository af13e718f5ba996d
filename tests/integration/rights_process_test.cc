// Selling rights (docs/SYNC.md "Selling rights") with real processes: a depot-central and two
// store nodes on loopback, each node's sync stream running through its own TcpProxy so it can be
// cut off from central while both keep running.
//   - Both stores cut off keep selling at the counter against their local rights while central
//     allocates marketplace orders against its rights; after the link returns everything ships,
//     nothing is oversold and both books agree.
//   - A loss at a store names the affected order, which is re-routed to the other store.
//   - A counter sale refused online asks central, which answers; the retry succeeds (and
//     depotctl shows both sides).
//   - Bad rights requests and policies are refused and change nothing.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "depot/v1/rights.pb.h"
#include "tests/integration/cluster_util.h"
#include "tests/integration/tcp_proxy.h"

namespace depot::testing {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr const char* kWidget = sample::kPlain;  // no tracking, no safety stock
constexpr const char* kSoap = sample::kSafety;   // safety stock 5: rights cover on hand - 5
constexpr const char* kChannel = "market";       // S1 then S2, splits allowed, no review

// Two stores in one region, the sample SKUs, three bins each, the channel "market".
void ImportStores(const CentralProcess& central, const std::string& dir) {
  ImportTwoSites(central, dir,
                 "S1,North store,store,north\n"
                 "S2,Harbour store,store,north\n",
                 "market,Marketplace,S1|S2,true,0\n");
}

v1::RightsPolicy Policy(int percent) {
  v1::RightsPolicy p;
  p.set_store_share_percent(percent);
  return p;
}

// PUT /v1/rights/policies/SITE; returns the answer.
http::ClientResponse PutPolicy(Http& central, const std::string& site,
                               const v1::RightsPolicy& p) {
  return central.Send("PUT", "/v1/rights/policies/" + site, MessageToJson(p));
}

// The node's book of one SKU (an empty book when it has none yet).
v1::RightsBook NodeBook(Http& node, const std::string& sku) {
  auto r = node.GetOk<v1::NodeRightsResponse>("/v1/rights?sku=" + sku);
  for (const auto& b : r.books()) {
    if (b.sku() == sku) return b;
  }
  v1::RightsBook empty;
  empty.set_sku(sku);
  return empty;
}

// Central's row for (site, SKU) (an empty row when it has none yet).
v1::CentralRights CentralRow(Http& central, const std::string& site, const std::string& sku) {
  auto r = central.GetOk<v1::ListRightsResponse>(
      absl::StrCat("/v1/rights?site=", site, "&sku=", sku));
  for (const auto& row : r.rights()) {
    if (row.site() == site && row.sku() == sku) return row;
  }
  v1::CentralRights empty;
  empty.set_site(site);
  empty.set_sku(sku);
  return empty;
}

// Compares the node's book with central's row for each SKU: "" when the rights central holds
// and every cumulative counter agree on both sides, else what differs.
std::string RightsDifference(Http& central, Http& node, const std::string& site,
                             const std::vector<std::string>& skus) {
  std::string diff;
  for (const auto& sku : skus) {
    const v1::RightsBook b = NodeBook(node, sku);
    const v1::CentralRights c = CentralRow(central, site, sku);
    auto cmp = [&](const char* what, int64_t at_node, int64_t at_central) {
      if (at_node != at_central) {
        absl::StrAppend(&diff, site, "/", sku, " ", what, ": node ", at_node, " central ",
                        at_central, "; ");
      }
    };
    cmp("central_granted/central_rights", b.central_granted(), c.central_rights());
    cmp("granted_total", b.granted_total(), c.granted_total());
    cmp("released_total", b.released_total(), c.released_total());
    cmp("returned_total", b.returned_total(), c.returned_total());
    cmp("shipped_total/consumed_total", b.shipped_total(), c.consumed_total());
    cmp("written_off_total", b.central_written_off_total(), c.written_off_total());
    cmp("grant_seq", static_cast<int64_t>(b.grant_seq()), static_cast<int64_t>(c.grant_seq()));
    cmp("release_seq", static_cast<int64_t>(b.release_seq()),
        static_cast<int64_t>(c.release_seq()));
  }
  return diff;
}

// Central's feed to `site` is applied there (the node acknowledged every entry).
std::string FeedDifference(Http& central, const std::string& site) {
  auto nodes = central.GetOk<v1::ListNodesResponse>("/v1/nodes");
  const v1::NodeInfo n = FindNode(nodes, site);
  if (n.feed_acked() == n.feed_seq() && n.connected()) return "";
  return absl::StrCat(site, " feed: seq ", n.feed_seq(), " acked ", n.feed_acked(),
                      n.connected() ? "" : " (not connected)", "; ");
}

// Waits until stock, outbox, feed and rights agree between central and the node.
void RequireRightsConverged(Http& central, Http& node, const std::string& site,
                            const std::vector<std::string>& skus) {
  std::string diff;
  bool ok = Eventually(
      [&] {
        diff = Difference(central, node, site) + FeedDifference(central, site) +
               RightsDifference(central, node, site, skus);
        return diff.empty();
      },
      kConvergeTimeout);
  INFO("not converged: " << diff);
  REQUIRE(ok);
}

// Both sides' own checks: the node's GET /v1/verify (stock and the rights identities) and
// central's GET /v1/rights/verify.
void RequireVerified(Http& central, Http& node) {
  auto v = node.GetOk<v1::VerifyResponse>("/v1/verify");
  INFO("node verify at " << node.base() << ": " << MessageToJson(v));
  CHECK(v.ok());
  auto cv = central.GetOk<google::protobuf::Struct>("/v1/rights/verify");
  INFO("central rights verify: " << MessageToJson(cv));
  CHECK(Field(cv, "ok") == "true");
}

// No exception of these kinds at central.
void RequireNoExceptions(Http& central, const std::vector<std::string>& kinds) {
  for (const auto& kind : kinds) {
    auto list = central.GetOk<v1::ListExceptionsResponse>("/v1/exceptions?kind=" + kind);
    INFO(MessageToJson(list));
    CHECK(list.exceptions_size() == 0);
  }
}

v1::LocalOrderRequest CounterSale(const std::string& sku, int64_t qty) {
  v1::LocalOrderRequest sale;
  sale.set_kind(v1::COUNTER_SALE);
  auto* l = sale.add_lines();
  l->set_sku(sku);
  l->set_quantity(qty);
  l->set_unit_price_cents(1500);
  return sale;
}

// Sells one unit at a time at the counter until the node refuses; the refusal must be the
// local-selling-rights one (409). Returns the units sold.
int64_t SellUntilRefused(Http& node, const std::string& sku, int64_t at_most = 100) {
  for (int64_t sold = 0; sold <= at_most; ++sold) {
    auto r = node.Send("POST", "/v1/local-orders", MessageToJson(CounterSale(sku, 1)));
    if (r.status == 201) continue;
    INFO("counter sale of " << sku << " at " << node.base() << " -> " << r.status << " "
                            << r.body);
    REQUIRE(r.status == 409);
    CHECK(absl::StrContains(r.body, "local selling rights"));
    return sold;
  }
  FAIL("the node sold more than " << at_most << " units of " << sku);
  return -1;
}

bool Connected(Http& node) { return Field(SyncState(node), "connected") == "true"; }

// Central and two store nodes, each node's sync link through its own proxy; the policies are
// set before the nodes first connect (they arrive with the master data).
struct StoreCluster {
  std::string dir;
  std::unique_ptr<CentralProcess> central;
  std::unique_ptr<TcpProxy> p1, p2;
  std::unique_ptr<NodeProcess> s1, s2;

  StoreCluster(const std::string& prefix, const v1::RightsPolicy& policy1,
               const v1::RightsPolicy& policy2)
      : dir(TestDir(prefix)) {
    central = StartCentral(dir);
    ImportStores(*central, dir);
    Http c(central->url());
    for (auto [site, policy] : {std::pair{"S1", &policy1}, std::pair{"S2", &policy2}}) {
      auto r = PutPolicy(c, site, *policy);
      INFO("PUT policy " << site << " -> " << r.status << " " << r.body);
      REQUIRE(r.status / 100 == 2);
    }
    p1 = std::make_unique<TcpProxy>(central->grpc_port());
    p2 = std::make_unique<TcpProxy>(central->grpc_port());
    s1 = StartNode(dir, "S1", p1->address());
    s2 = StartNode(dir, "S2", p2->address());
    for (auto [node, policy] : {std::pair{s1.get(), &policy1}, std::pair{s2.get(), &policy2}}) {
      Http h(node->url());
      WaitForMasterData(h);
      v1::RightsPolicy in_force;
      bool ok = Eventually(
          [&] {
            in_force = h.GetOk<v1::NodeRightsResponse>("/v1/rights").policy();
            return !in_force.is_default() &&
                   in_force.store_share_percent() == policy->store_share_percent();
          },
          kConvergeTimeout);
      INFO("policy in force at " << h.base() << ": " << MessageToJson(in_force));
      REQUIRE(ok);
    }
  }
};

// ---------------------------------------------------------------------------------------------

TEST_CASE("two stores cut off keep selling at the counter while central allocates",
          "[integration][rights]") {
  StoreCluster cl("depot-rights-cut-", Policy(40), Policy(40));
  Http c(cl.central->url()), h1(cl.s1->url()), h2(cl.s2->url());
  const std::vector<std::string> skus = {kWidget, kSoap};
  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));
  h1.WriteOk("/v1/receipts", Receipt(kSoap, sample::kBinA2, 15));
  h2.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 20));
  h2.WriteOk("/v1/receipts", Receipt(kSoap, sample::kBinB1, 10));
  RequireRightsConverged(c, h1, "S1", skus);
  RequireRightsConverged(c, h2, "S2", skus);

  struct Site {
    std::string id;
    Http* node;
  };
  std::vector<Site> sites = {{"S1", &h1}, {"S2", &h2}};
  // The split at the cut, per site and SKU.
  std::map<std::string, std::map<std::string, v1::RightsBook>> book;
  std::map<std::string, std::map<std::string, v1::CentralRights>> row;
  for (const Site& s : sites) {
    for (const auto& sku : skus) {
      book[s.id][sku] = NodeBook(*s.node, sku);
      row[s.id][sku] = CentralRow(c, s.id, sku);
      INFO(s.id << "/" << sku << " node " << MessageToJson(book[s.id][sku]) << " central "
                << MessageToJson(row[s.id][sku]));
      CHECK(book[s.id][sku].local_rights() > 0);
      CHECK(row[s.id][sku].central_rights() > 0);
      CHECK(row[s.id][sku].central_committed() == 0);
      // Policy 40 %: the local target of the sellable units, the rest to central.
      const int64_t sellable = book[s.id][sku].on_hand() - book[s.id][sku].safety_stock();
      CHECK(book[s.id][sku].local_rights() == sellable * 40 / 100);
      CHECK(book[s.id][sku].local_rights() + row[s.id][sku].central_rights() == sellable);
    }
  }

  // Cut both stores off; central keeps running and sees them go.
  cl.p1->Cut();
  cl.p2->Cut();
  for (const Site& s : sites) {
    CHECK(Eventually([&] { return !Connected(*s.node); }, kConvergeTimeout));
  }
  CHECK(Eventually(
      [&] {
        auto nodes = c.GetOk<v1::ListNodesResponse>("/v1/nodes");
        return !FindNode(nodes, "S1").connected() && !FindNode(nodes, "S2").connected();
      },
      kConvergeTimeout));
  // The nodes keep dialling and are refused.
  CHECK(Eventually([&] { return cl.p1->refused() > 0 && cl.p2->refused() > 0; },
                   kConvergeTimeout));

  // At the counters: exactly the local rights sell, with no round trip; the rest is refused
  // although the goods are on the shelf (they back central's rights).
  for (const Site& s : sites) {
    for (const auto& sku : skus) {
      const int64_t sold = SellUntilRefused(*s.node, sku);
      INFO(s.id << "/" << sku);
      CHECK(sold == book[s.id][sku].local_rights());
      auto atp = s.node->GetOk<v1::AtpResponse>("/v1/atp/" + sku);
      CHECK(atp.items(0).available() == row[s.id][sku].central_rights());
    }
  }

  // At central: marketplace orders of one unit are allocated against central's rights until
  // routing backorders them; their releases wait in the feeds of the unreachable stores.
  std::map<std::string, std::map<std::string, int64_t>> allocated;  // site -> sku -> units
  std::vector<std::string> released_orders;
  std::map<std::string, std::string> backordered;  // sku -> order id
  int n = 0;
  for (const auto& sku : skus) {
    for (int i = 0; i < 100 && !backordered.count(sku); ++i) {
      v1::Order o = Capture(c, NewOrder(kChannel, absl::StrCat("CUT-", ++n), "north", {{sku, 1}}));
      if (o.fulfilments_size() == 0) {
        INFO(MessageToJson(o));
        CHECK(o.status() == v1::ORDER_BACKORDERED);
        CHECK(absl::StrContains(o.routing_note(), "selling rights"));
        backordered[sku] = o.order_id();
        continue;
      }
      REQUIRE(o.fulfilments_size() == 1);
      for (const auto& l : o.fulfilments(0).lines()) {
        allocated[o.fulfilments(0).site()][l.sku()] += l.quantity();
      }
      released_orders.push_back(o.order_id());
    }
    REQUIRE(backordered.count(sku) == 1);
  }
  for (const Site& s : sites) {
    for (const auto& sku : skus) {
      INFO(s.id << "/" << sku);
      CHECK(allocated[s.id][sku] <= row[s.id][sku].central_rights());
      // Routing used every right central held: nothing is left available anywhere.
      const v1::CentralRights now = CentralRow(c, s.id, sku);
      CHECK(now.central_committed() == allocated[s.id][sku]);
      CHECK(now.available() == 0);
    }
  }

  // The links return: the stores learn the releases, central learns the sales.
  cl.p1->Restore();
  cl.p2->Restore();
  RequireRightsConverged(c, h1, "S1", skus);
  RequireRightsConverged(c, h2, "S2", skus);

  // Every released fulfilment finds its stock reserved at its store and ships in full.
  std::map<std::string, std::vector<std::string>> fulfilments_at;  // site -> fulfilment ids
  for (const auto& id : released_orders) {
    v1::Order o = GetOrder(c, id);
    REQUIRE(o.fulfilments_size() == 1);
    fulfilments_at[o.fulfilments(0).site()].push_back(o.fulfilments(0).fulfilment_id());
  }
  for (const Site& s : sites) {
    for (const auto& fid : fulfilments_at[s.id]) {
      v1::NodeFulfilment f = WaitFulfilment(*s.node, fid, v1::FULFILMENT_ACCEPTED);
      for (const auto& l : f.lines()) {
        INFO(MessageToJson(f));
        CHECK(l.reserved() == l.quantity());
        CHECK(l.short_quantity() == 0);
        CHECK(l.short_reason() != "no_stock_at_release");
      }
    }
    v1::Wave wave = MakeWave(*s.node, 200);
    for (const auto& fid : fulfilments_at[s.id]) {
      PickAll(*s.node, wave, fid, [](const std::string& sku) { return sku; });
      PackAndShip(*s.node, fid, "1Z-" + fid, /*one_step=*/true);
    }
  }
  for (const auto& id : released_orders) {
    v1::Order o = WaitOrder(c, id, v1::ORDER_SHIPPED);
    for (const auto& l : o.lines()) CHECK(l.shipped() == l.quantity());
  }
  RequireRightsConverged(c, h1, "S1", skus);
  RequireRightsConverged(c, h2, "S2", skus);

  // Nothing oversold: every unit that left was a right, the shelves are not negative, both sides
  // agree on what is left, and both books hold their identities.
  for (const Site& s : sites) {
    for (const auto& sku : skus) {
      INFO(s.id << "/" << sku);
      const v1::RightsBook b = NodeBook(*s.node, sku);
      const int64_t received = book[s.id][sku].on_hand();
      CHECK(b.on_hand() >= 0);
      CHECK(b.on_hand() ==
            received - book[s.id][sku].local_rights() - allocated[s.id][sku]);
      CHECK(b.local_sold_total() - book[s.id][sku].local_sold_total() ==
            book[s.id][sku].local_rights());
      CHECK(b.shipped_total() == allocated[s.id][sku]);
      CHECK(b.excess() == 0);
      CHECK(NodeOnHand(*s.node, sku) == CentralOnHand(c, sku, s.id));
    }
    auto shorted = s.node->GetOk<v1::FulfilmentsResponse>("/v1/fulfilments?status=cancelled");
    CHECK(shorted.fulfilments_size() == 0);
    RequireVerified(c, *s.node);
  }
  RequireNoExceptions(c, {"rights_conflict", "rights_seq", "rights_loss", "short_pick"});
  // The stores were refused locally and central has nothing left: the backorders wait.
  for (const auto& [sku, id] : backordered) {
    CHECK(GetOrder(c, id).status() == v1::ORDER_BACKORDERED);
  }
}

TEST_CASE("a loss names the affected orders and they are re-routed", "[integration][rights]") {
  StoreCluster cl("depot-rights-loss-", Policy(40), Policy(40));
  Http c(cl.central->url()), h1(cl.s1->url()), h2(cl.s2->url());
  const std::vector<std::string> skus = {kWidget};
  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));  // local 4, central 6
  h2.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));
  RequireRightsConverged(c, h1, "S1", skus);
  RequireRightsConverged(c, h2, "S2", skus);
  REQUIRE(CentralRow(c, "S1", kWidget).central_rights() == 6);

  // Central allocates 5 of its 6 rights at S1 (first in the channel's priority).
  v1::Order o = Capture(c, NewOrder(kChannel, "LOSS-1", "north", {{kWidget, 5}}));
  REQUIRE(o.fulfilments_size() == 1);
  REQUIRE(o.fulfilments(0).site() == "S1");
  const std::string f1 = o.fulfilments(0).fulfilment_id();
  CHECK(WaitFulfilment(h1, f1, v1::FULFILMENT_ACCEPTED).lines(0).reserved() == 5);

  // 8 units are found damaged at S1: 2 remain for a reservation of 5.
  v1::AdjustRequest adj;
  adj.set_sku(kWidget);
  adj.set_bin(sample::kBinA1);
  adj.set_quantity(-8);
  adj.set_reason("damaged");
  h1.WriteOk("/v1/adjustments", adj);

  // The node revoked its local rights, shorted what it cannot fill and reported the loss.
  v1::NodeFulfilment shorted = WaitFulfilment(h1, f1, v1::FULFILMENT_ACCEPTED);
  REQUIRE(shorted.lines_size() == 1);
  CHECK(shorted.lines(0).reserved() == 2);
  CHECK(shorted.lines(0).short_quantity() == 3);
  CHECK(shorted.lines(0).short_reason() == "stock_loss");
  const v1::RightsBook after_loss = NodeBook(h1, kWidget);
  CHECK(after_loss.local_rights() == 0);
  CHECK(after_loss.local_revoked_total() == 4);
  CHECK(after_loss.excess_reported() + after_loss.central_written_off_total() >= 1);

  // Central names the order in a rights_loss exception and re-routes the 3 units to S2.
  CHECK(Eventually([&] { return HasException(c, "rights_loss", o.order_id()); },
                   kConvergeTimeout));
  {
    auto list = c.GetOk<v1::ListExceptionsResponse>("/v1/exceptions?kind=rights_loss");
    REQUIRE(list.exceptions_size() == 1);
    const v1::ExceptionEntry& e = list.exceptions(0);
    INFO(MessageToJson(e));
    CHECK(e.node_id() == "S1");
    CHECK(e.sku() == kWidget);
    CHECK(absl::StrContains(e.message(), o.order_id()));
  }
  v1::Order rerouted;
  bool ok = Eventually(
      [&] {
        rerouted = GetOrder(c, o.order_id());
        return rerouted.fulfilments_size() == 2;
      },
      kConvergeTimeout);
  INFO(MessageToJson(rerouted));
  REQUIRE(ok);
  const v1::Fulfilment& second = rerouted.fulfilments(1);
  CHECK(second.site() == "S2");
  REQUIRE(second.lines_size() == 1);
  CHECK(second.lines(0).quantity() == 3);

  // Both parts ship in full from what is really there.
  for (auto [node, fid] : {std::pair{&h1, f1}, std::pair{&h2, second.fulfilment_id()}}) {
    v1::NodeFulfilment f = WaitFulfilment(*node, fid, v1::FULFILMENT_ACCEPTED);
    for (const auto& l : f.lines()) CHECK(l.short_reason() != "no_stock_at_release");
    v1::Wave wave = MakeWave(*node);
    PickAll(*node, wave, fid, [](const std::string& sku) { return sku; });
    PackAndShip(*node, fid, "1Z-" + fid, /*one_step=*/true);
  }
  v1::Order done = WaitOrder(c, o.order_id(), v1::ORDER_SHIPPED);
  REQUIRE(done.lines_size() == 1);
  CHECK(done.lines(0).shipped() == 5);

  RequireRightsConverged(c, h1, "S1", skus);
  RequireRightsConverged(c, h2, "S2", skus);
  CHECK(NodeOnHand(h1, kWidget) == 0);
  CHECK(NodeOnHand(h2, kWidget) == 7);
  const v1::RightsBook b1 = NodeBook(h1, kWidget);
  CHECK(b1.excess() == 0);
  CHECK(b1.central_granted() == 0);
  CHECK(b1.shipped_total() == 2);
  CHECK(b1.returned_total() == 3);
  CHECK(b1.central_written_off_total() == 1);  // central's 6 - shipped 2 - returned 3
  CHECK(NodeBook(h2, kWidget).shipped_total() == 3);
  RequireVerified(c, h1);
  RequireVerified(c, h2);
  RequireNoExceptions(c, {"rights_conflict", "rights_seq"});
}

TEST_CASE("a refused counter sale online asks central for more", "[integration][rights]") {
  StoreCluster cl("depot-rights-refill-", Policy(20), Policy(40));
  Http c(cl.central->url()), h1(cl.s1->url());
  const std::vector<std::string> skus = {kWidget};
  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));  // local 2, central 8
  RequireRightsConverged(c, h1, "S1", skus);
  REQUIRE(NodeBook(h1, kWidget).local_rights() == 2);

  // Sold out locally: the next sale is refused at once (no round trip) ...
  CHECK(SellUntilRefused(h1, kWidget) == 2);
  // ... and central is asked for the missing unit: it answers with a release of it.
  v1::RightsBook b;
  bool ok = Eventually(
      [&] {
        b = NodeBook(h1, kWidget);
        return !b.refill_pending() && b.local_rights() == 1;
      },
      kConvergeTimeout);
  INFO(MessageToJson(b));
  REQUIRE(ok);
  CHECK(b.released_total() == 1);
  CHECK(b.central_granted() == 7);
  auto retry = Parse<v1::NodeFulfilment>(PostOk(h1, "/v1/local-orders", CounterSale(kWidget, 1)));
  CHECK(retry.status() == v1::FULFILMENT_SHIPPED);
  RequireRightsConverged(c, h1, "S1", skus);

  // depotctl shows it at the node ...
  {
    ProcessResult r = CtlNode(*cl.s1, {"rights", "--sku", kWidget});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto rights = Parse<v1::NodeRightsResponse>(r.out);
    REQUIRE(rights.books_size() == 1);
    CHECK(rights.books(0).local_rights() == 0);
    CHECK(rights.books(0).local_sold_total() == 3);
    CHECK(rights.books(0).released_total() == 1);
    CHECK(rights.policy().store_share_percent() == 20);
  }
  {
    ProcessResult r = CtlNode(*cl.s1, {"rights", "history", "--sku", kWidget});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    auto history = Parse<v1::RightsHistoryResponse>(r.out);
    std::map<std::string, int64_t> units_by_kind;
    for (const auto& e : history.entries()) units_by_kind[e.kind()] += e.units();
    CHECK(units_by_kind["answer"] == 1);
    CHECK(units_by_kind.count("request") == 1);
    CHECK(units_by_kind["grant"] == 8);
  }
  // ... and at central.
  {
    auto rights = Parse<v1::ListRightsResponse>(CtlCentral(*cl.central, {"central", "rights"}));
    bool found = false;
    for (const auto& row : rights.rights()) {
      if (row.site() != "S1" || row.sku() != kWidget) continue;
      found = true;
      CHECK(row.central_rights() == 7);
      CHECK(row.released_total() == 1);
      CHECK(row.granted_total() == 8);
    }
    CHECK(found);
  }
  {
    auto history = c.GetOk<v1::RightsHistoryResponse>(
        absl::StrCat("/v1/rights/history?site=S1&sku=", kWidget));
    std::map<std::string, int64_t> units_by_kind;
    for (const auto& e : history.entries()) units_by_kind[e.kind()] += e.units();
    CHECK(units_by_kind["request_from_node"] == 1);
    CHECK(units_by_kind["release"] == 1);
  }
  RequireVerified(c, h1);
}

TEST_CASE("bad rights requests and policies are refused and change nothing",
          "[integration][rights]") {
  StoreCluster cl("depot-rights-bad-", Policy(40), Policy(40));
  Http c(cl.central->url()), h1(cl.s1->url());
  const std::vector<std::string> skus = {kWidget};
  h1.WriteOk("/v1/receipts", Receipt(kWidget, sample::kBinA1, 10));
  RequireRightsConverged(c, h1, "S1", skus);

  // What must not change: both books, both histories, the policies and central's feed.
  struct State {
    v1::NodeRightsResponse node;
    v1::RightsHistoryResponse node_history;
    v1::ListRightsResponse central;
    v1::RightsHistoryResponse central_history;
    v1::ListPoliciesResponse policies;
    uint64_t feed_seq = 0, last_seq = 0;
  };
  auto take = [&] {
    State s;
    s.node = h1.GetOk<v1::NodeRightsResponse>("/v1/rights");
    s.node_history = h1.GetOk<v1::RightsHistoryResponse>("/v1/rights/history");
    s.central = c.GetOk<v1::ListRightsResponse>("/v1/rights");
    s.central_history = c.GetOk<v1::RightsHistoryResponse>("/v1/rights/history");
    s.policies = c.GetOk<v1::ListPoliciesResponse>("/v1/rights/policies");
    s.feed_seq = FindNode(c.GetOk<v1::ListNodesResponse>("/v1/nodes"), "S1").feed_seq();
    s.last_seq = h1.GetOk<v1::NodeStatus>("/v1/status").last_seq();
    return s;
  };
  const State before = take();
  auto unchanged = [&](const std::string& after_what) {
    const State now = take();
    INFO("after " << after_what);
    CHECK(MessageDifferencer::Equals(now.node, before.node));
    CHECK(MessageDifferencer::Equals(now.node_history, before.node_history));
    CHECK(MessageDifferencer::Equals(now.central, before.central));
    CHECK(MessageDifferencer::Equals(now.central_history, before.central_history));
    CHECK(MessageDifferencer::Equals(now.policies, before.policies));
    CHECK(now.feed_seq == before.feed_seq);
    CHECK(now.last_seq == before.last_seq);
  };

  // At the node: 0 units, an unknown SKU.
  {
    v1::RightsRequest q;
    q.set_sku(kWidget);
    q.set_units(0);
    PostStatus(h1, "/v1/rights/request", q, 400);
    unchanged("a request for 0 units");
    q.set_sku("NO-SUCH-SKU");
    q.set_units(1);
    PostStatus(h1, "/v1/rights/request", q, 404);
    unchanged("a request for an unknown SKU");
  }
  // At central: a share above 100 %, an unknown site.
  {
    auto r = PutPolicy(c, "S1", Policy(150));
    INFO(r.body);
    CHECK(r.status == 400);
    unchanged("a policy of 150 %");
    r = PutPolicy(c, "NO-SUCH-SITE", Policy(50));
    INFO(r.body);
    CHECK(r.status == 404);
    unchanged("a policy for an unknown site");
  }
  // Releasing more than central has available.
  {
    const v1::CentralRights row = CentralRow(c, "S1", kWidget);
    REQUIRE(row.available() == 6);
    v1::ReleaseRightsRequest q;
    q.set_site("S1");
    q.set_sku(kWidget);
    q.set_units(row.available() + 1);
    PostStatus(c, "/v1/rights/release", q, 409);
    unchanged("a release beyond available");
  }
  // A release central can make goes through (the refusals above were about the input).
  {
    v1::ReleaseRightsRequest q;
    q.set_site("S1");
    q.set_sku(kWidget);
    q.set_units(2);
    q.set_note("more for the counter");
    auto row = Parse<v1::CentralRights>(PostOk(c, "/v1/rights/release", q));
    CHECK(row.central_rights() == 4);
    CHECK(Eventually([&] { return NodeBook(h1, kWidget).local_rights() == 6; },
                     kConvergeTimeout));
    RequireRightsConverged(c, h1, "S1", skus);
    RequireVerified(c, h1);
  }
}

}  // namespace
}  // namespace depot::testing
