// Central's side of the selling rights (docs/SYNC.md "Selling rights", central/central_rights.h)
// in-process against a real SQLite store: synthetic node events (grants, requests, losses,
// fulfilment updates with ships, shorts and cancels) through ApplyEvents, routing against central's
// rights, the answers and requests in the nodes' feeds, policies, listings, the planner's release,
// the HTTP routes, and VerifyRights after every scenario.
#include <catch2/catch.hpp>
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "central/http_api.h"
#include "common/json.h"
#include "common/metrics.h"
#include "tests/unit/central_fixture.h"

using namespace depot;
using absl::StrContains;
using testing::CentralWorld;
using testing::kSecond;
using testing::Req;
using testing::Upd;

namespace {

using absl::StatusCode;

struct World : CentralWorld {
  // The rights entries of a site's feed, in order.
  std::vector<v1::FeedEntry> RightsFeed(const std::string& site) {
    auto f = store->ReadFeed(site, 0, 100000);
    REQUIRE(f.ok());
    std::vector<v1::FeedEntry> out;
    for (auto& e : *f) {
      if (e.has_rights_release() || e.has_rights_request() || e.has_rights_policy()) {
        out.push_back(e);
      }
    }
    return out;
  }
  std::vector<v1::FeedEntry> Requests(const std::string& site) {
    std::vector<v1::FeedEntry> out;
    for (auto& e : RightsFeed(site)) {
      if (e.has_rights_request()) out.push_back(e);
    }
    return out;
  }
  size_t FeedSize(const std::string& site) { return store->ReadFeed(site, 0, 100000)->size(); }
  // Central's row for (site, sku); all zero when there is none.
  v1::CentralRights Row(const std::string& site, const std::string& sku) {
    v1::ListRightsRequest r;
    r.set_site(site);
    r.set_sku(sku);
    auto l = rights->List(r);
    REQUIRE(l.ok());
    if (l->rights_size() == 0) return {};
    REQUIRE(l->rights_size() == 1);
    return l->rights(0);
  }
  std::vector<std::string> HistoryKinds(const std::string& site, const std::string& sku) {
    v1::RightsHistoryRequest r;
    r.set_site(site);
    r.set_sku(sku);
    r.set_limit(1000);
    auto h = rights->History(r);
    REQUIRE(h.ok());
    std::vector<std::string> out;  // oldest first
    for (int i = h->entries_size() - 1; i >= 0; --i) out.push_back(h->entries(i).kind());
    return out;
  }
  void CheckVerified() {
    auto v = rights->Verify();
    REQUIRE(v.ok());
    INFO(absl::StrJoin(*v, "\n"));
    CHECK(v->empty());
  }
  static v1::Event Request(const std::string& sku, int64_t units, const std::string& reason) {
    v1::Event e;
    auto* q = e.mutable_rights()->mutable_request();
    q->set_sku(sku);
    q->set_units(units);
    q->set_reason(reason);
    e.mutable_rights()->mutable_book()->set_sku(sku);
    return e;
  }
  static v1::Event Loss(const std::string& sku, int64_t lost, int64_t excess,
                        std::vector<std::string> shorted = {}) {
    v1::Event e;
    auto* l = e.mutable_rights()->mutable_loss();
    l->set_sku(sku);
    l->set_units_lost(lost);
    l->set_shortfall(excess);
    l->set_excess(excess);
    l->set_reason("damaged");
    for (auto& f : shorted) l->add_fulfilment_ids(f);
    e.mutable_rights()->mutable_book()->set_sku(sku);
    return e;
  }
  std::vector<v1::ExceptionEntry> ExceptionsOfKind(const std::string& kind) {
    v1::ListExceptionsRequest r;
    r.set_kind(kind);
    auto l = central->ListExceptions(r);
    REQUIRE(l.ok());
    return {l->exceptions().begin(), l->exceptions().end()};
  }
  void SetOnline(std::set<std::string> sites) {
    std::lock_guard<std::mutex> lock(online_mu);
    online = std::move(sites);
  }
};

}  // namespace

TEST_CASE("routing allocates against central's rights, not the mirror, and asks the node",
          "[central-rights]") {
  World w;
  // S1 has 10 on hand but granted central nothing yet.
  w.Apply("S1", World::Movement(v1::RECEIPT, "A", 10));
  v1::Order o = w.Capture(Req("web", "R-1", {{"A", 2, 100}}));
  CHECK(o.status() == v1::ORDER_BACKORDERED);
  CHECK(o.fulfilments_size() == 0);
  INFO(o.routing_note());
  CHECK(StrContains(o.routing_note(), "no candidate site has A available (central's selling"));

  // S1 is online and its mirror shows stock: central asks it once for the 2 missing units.
  auto asked = w.Requests("S1");
  REQUIRE(asked.size() == 1);
  CHECK(asked[0].rights_request().sku() == "A");
  CHECK(asked[0].rights_request().units() == 2);
  CHECK(StrContains(asked[0].rights_request().reason(), o.order_id()));
  CHECK(w.Requests("S2").empty());  // nothing in S2's mirror
  CHECK(w.Row("S1", "A").request_pending_units() == 2);
  // Not again while the request is pending...
  CHECK(w.orders->RunRoutingPass().value() == 0);
  CHECK(w.Requests("S1").size() == 1);
  // ... until 30 s passed without an answer.
  w.clock.Advance(31 * kSecond);
  CHECK(w.orders->RunRoutingPass().value() == 0);
  CHECK(w.Requests("S1").size() == 2);
  // An offline site is not asked.
  w.clock.Advance(31 * kSecond);
  w.SetOnline({"S2", "S3"});
  CHECK(w.orders->RunRoutingPass().value() == 0);
  CHECK(w.Requests("S1").size() == 2);
  w.SetOnline({"S1", "S2", "S3"});

  // The node answers with 5 units: the pending request clears and the pass routes the order.
  w.Apply("S1", w.Grant("S1", "A", 5, "answer"));
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 5);
  CHECK(row.request_pending_units() == 0);
  CHECK(w.orders->RunRoutingPass().value() == 1);
  o = w.Get(o.order_id());
  CHECK(o.status() == v1::ORDER_RELEASED);
  REQUIRE(o.fulfilments_size() == 1);
  CHECK(o.fulfilments(0).site() == "S1");
  row = w.Row("S1", "A");
  CHECK(row.central_committed() == 2);
  CHECK(row.available() == 3);
  CHECK(row.grant_seq() == 1);

  v1::RightsHistoryRequest h;
  h.set_site("S1");
  h.set_sku("A");
  auto hist = w.rights->History(h);
  REQUIRE(hist.ok());
  REQUIRE(hist->entries_size() >= 1);
  CHECK(hist->entries(0).kind() == "allocate");  // newest first
  CHECK(hist->entries(0).reference() == o.fulfilments(0).fulfilment_id());
  CHECK(hist->entries(0).units() == 2);
  CHECK(w.HistoryKinds("S1", "A") ==
        std::vector<std::string>{"request_to_node", "request_to_node", "grant", "allocate"});
  w.CheckVerified();
}

TEST_CASE("a node's request is answered at once with half of what central can spare",
          "[central-rights]") {
  World w;
  w.Receive("S1", "A", 10);
  v1::Order o = w.Capture(Req("web", "Q-1", {{"A", 2, 100}}));
  REQUIRE(o.fulfilments_size() == 1);  // 2 of 10 committed, 8 available

  w.Apply("S1", World::Request("A", 10, "refill: local 0 < 3"));
  auto feed = w.RightsFeed("S1");
  REQUIRE_FALSE(feed.empty());
  v1::RightsRelease a = feed.back().rights_release();
  CHECK(a.sku() == "A");
  CHECK(a.units() == 4);
  CHECK(a.seq() == 1);
  CHECK(a.answer());
  CHECK_FALSE(a.write_off());
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 6);
  CHECK(row.central_committed() == 2);
  CHECK(row.released_total() == 4);
  CHECK(row.release_seq() == 1);

  // Never more than asked: 1 of the 2 central could spare now.
  w.Apply("S1", World::Request("A", 1, "sale refused"));
  a = w.RightsFeed("S1").back().rights_release();
  CHECK(a.units() == 1);
  CHECK(a.seq() == 2);
  CHECK(w.Row("S1", "A").central_rights() == 5);

  // Nothing to spare: a 0-unit answer without a seq, no counter changes.
  const size_t before = w.FeedSize("S2");
  w.Apply("S2", World::Request("A", 3, "refill"));
  REQUIRE(w.FeedSize("S2") == before + 1);
  a = w.RightsFeed("S2").back().rights_release();
  CHECK(a.units() == 0);
  CHECK(a.seq() == 0);
  CHECK(a.answer());
  row = w.Row("S2", "A");
  CHECK(row.central_rights() == 0);
  CHECK(row.release_seq() == 0);
  CHECK(row.released_total() == 0);
  CHECK(w.HistoryKinds("S1", "A") == std::vector<std::string>{"grant", "allocate",
                                                              "request_from_node", "release",
                                                              "request_from_node", "release"});
  w.CheckVerified();
}

TEST_CASE("grant seqs are checked: a gap raises rights_seq and is applied anyway",
          "[central-rights]") {
  World w;
  w.Receive("S1", "A", 4);  // seq 1
  v1::Event g = w.Grant("S1", "A", 3);
  g.mutable_rights()->mutable_grant()->set_seq(3);  // 2 is missing
  g.mutable_rights()->mutable_book()->set_central_granted(7);
  g.mutable_rights()->mutable_book()->set_on_hand(9);
  w.Apply("S1", g);  // REQUIREs the mark to advance: the stream never stalls
  auto ex = w.ExceptionsOfKind("rights_seq");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].node_id() == "S1");
  CHECK(ex[0].sku() == "A");
  CHECK(StrContains(ex[0].message(), "seq 3 but central expected 2"));
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 7);
  CHECK(row.granted_total() == 7);
  CHECK(row.grant_seq() == 3);
  // The node's side as it reported it.
  CHECK(row.node().sku() == "A");
  CHECK(row.node().central_granted() == 7);
  CHECK(row.node().on_hand() == 9);
  // A negative grant is refused as a conflict and changes nothing.
  v1::Event bad = w.Grant("S1", "A", 1);
  bad.mutable_rights()->mutable_grant()->set_units(-5);
  w.Apply("S1", bad);
  CHECK(w.ExceptionsOfKind("rights_conflict").size() == 1);
  CHECK(w.Row("S1", "A").central_rights() == 7);
  w.CheckVerified();
}

TEST_CASE("ships consume rights, shorts return them, cancels drop the commitment",
          "[central-rights]") {
  World w;
  w.Receive("S1", "A", 10);

  // Shipped: rights and commitment consumed.
  v1::Order o1 = w.Capture(Req("web", "P-1", {{"A", 3, 100}}));
  REQUIRE(o1.fulfilments(0).site() == "S1");
  CHECK(w.Row("S1", "A").central_committed() == 3);
  w.Send("S1", Upd(o1, 0, v1::FULFILMENT_ACCEPTED, "accepted"));
  CHECK(w.Row("S1", "A").central_committed() == 3);
  w.Send("S1", Upd(o1, 0, v1::FULFILMENT_SHIPPED, "shipped"));
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 7);
  CHECK(row.central_committed() == 0);
  CHECK(row.consumed_total() == 3);
  w.CheckVerified();
  // A replayed ship report changes nothing.
  w.Send("S1", Upd(o1, 0, v1::FULFILMENT_SHIPPED, "shipped"));
  CHECK(w.Row("S1", "A").consumed_total() == 3);

  // Shorted: the short units go back to the node, the rest stays committed until it ships.
  v1::Order o2 = w.Capture(Req("web", "P-2", {{"A", 4, 100}}));
  REQUIRE(o2.fulfilments(0).site() == "S1");
  auto s = Upd(o2, 0, v1::FULFILMENT_PICKED, "short");
  s.mutable_lines(0)->set_picked(3);
  s.mutable_lines(0)->set_short_quantity(1);
  s.mutable_lines(0)->set_short_reason("damaged");
  w.Send("S1", s);
  row = w.Row("S1", "A");
  CHECK(row.central_rights() == 6);
  CHECK(row.central_committed() == 3);
  CHECK(row.returned_total() == 1);
  w.CheckVerified();
  // S1 shorted this order and S2 has no rights: the unit stays open.
  CHECK(w.orders->RunRoutingPass().value() == 1);
  CHECK(w.Get(o2.order_id()).fulfilments_size() == 1);
  auto shipped = Upd(o2, 0, v1::FULFILMENT_SHIPPED, "shipped");
  shipped.mutable_lines(0)->set_picked(3);
  shipped.mutable_lines(0)->set_short_quantity(1);
  shipped.mutable_lines(0)->set_shipped(3);
  w.Send("S1", shipped);
  row = w.Row("S1", "A");
  CHECK(row.central_rights() == 3);
  CHECK(row.central_committed() == 0);
  CHECK(row.consumed_total() == 6);
  w.CheckVerified();

  // Cancelled at the customer's request: the commitment goes, the rights stay with central.
  v1::Order o3 = w.Capture(Req("web", "P-3", {{"A", 2, 100}}));
  REQUIRE(o3.fulfilments(0).site() == "S1");
  CHECK(w.Row("S1", "A").available() == 1);
  v1::CancelOrderRequest c;
  c.set_order_id(o3.order_id());
  REQUIRE(w.orders->Cancel(c).ok());
  CHECK(w.Row("S1", "A").central_committed() == 2);  // only asked so far
  w.Send("S1", Upd(o3, 0, v1::FULFILMENT_CANCELLED, "cancelled"));
  row = w.Row("S1", "A");
  CHECK(row.central_rights() == 3);
  CHECK(row.central_committed() == 0);
  CHECK(row.available() == 3);
  CHECK(w.HistoryKinds("S1", "A") == std::vector<std::string>{"grant", "allocate", "ship",
                                                              "allocate", "short_return", "ship",
                                                              "allocate", "cancel"});
  CHECK(w.ExceptionsOfKind("rights_conflict").empty());
  w.CheckVerified();
}

TEST_CASE("node-local orders do not touch central's book", "[central-rights]") {
  World w;
  w.Receive("S2", "A", 5);
  v1::FulfilmentUpdate u;
  u.set_fulfilment_id("S2-L1");
  u.set_order_id("S2-L1");
  u.set_status(v1::FULFILMENT_SHIPPED);
  u.set_change("shipped");
  u.set_local_kind(v1::COUNTER_SALE);
  auto* ll = u.add_local_lines();
  ll->set_sku("A");
  ll->set_quantity(2);
  auto* fl = u.add_lines();
  fl->set_line_no(1);
  fl->set_sku("A");
  fl->set_quantity(2);
  fl->set_shipped(2);
  w.Send("S2", u);
  // Click-and-collect: accepted, then handed out.
  u.set_fulfilment_id("S2-L2");
  u.set_order_id("S2-L2");
  u.set_local_kind(v1::CLICK_AND_COLLECT);
  u.set_status(v1::FULFILMENT_ACCEPTED);
  u.mutable_lines(0)->set_shipped(0);
  w.Send("S2", u);
  u.set_status(v1::FULFILMENT_SHIPPED);
  u.mutable_lines(0)->set_shipped(2);
  w.Send("S2", u);
  v1::CentralRights row = w.Row("S2", "A");
  CHECK(row.central_rights() == 5);
  CHECK(row.central_committed() == 0);
  CHECK(row.consumed_total() == 0);
  CHECK(w.HistoryKinds("S2", "A") == std::vector<std::string>{"grant"});
  w.CheckVerified();
}

TEST_CASE("a loss raises rights_loss naming the orders and writes off what central can",
          "[central-rights]") {
  World w;
  w.Receive("S1", "A", 10);
  v1::Order o1 = w.Capture(Req("web", "L-1", {{"A", 3, 100}}));
  v1::Order o2 = w.Capture(Req("web", "L-2", {{"A", 1, 100}}));
  REQUIRE(o1.fulfilments(0).site() == "S1");
  REQUIRE(o2.fulfilments(0).site() == "S1");
  const std::string f1 = o1.fulfilments(0).fulfilment_id();
  const std::string f2 = o2.fulfilments(0).fulfilment_id();

  // The node lost 9: it shorted L-2's unit (its update) and central's rights still over-claim 8.
  auto s = Upd(o2, 0, v1::FULFILMENT_CANCELLED, "short");
  s.mutable_lines(0)->set_short_quantity(1);
  s.mutable_lines(0)->set_short_reason("damaged");
  w.Send("S1", s);
  CHECK(w.Row("S1", "A").central_rights() == 9);
  const size_t feed_before = w.RightsFeed("S1").size();
  w.Apply("S1", World::Loss("A", 9, 8, {f2}));

  auto ex = w.ExceptionsOfKind("rights_loss");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].node_id() == "S1");
  CHECK(ex[0].sku() == "A");
  INFO(ex[0].message());
  CHECK(StrContains(ex[0].message(), "exceed its sellable stock by 8"));
  CHECK(StrContains(ex[0].message(), "writes off 6"));
  CHECK(StrContains(ex[0].message(), "2 committed units may not ship"));
  CHECK(StrContains(ex[0].message(), "shorted by the node: " + o2.order_id() + " (" + f2 + ")"));
  CHECK(StrContains(ex[0].message(), "open at S1: " + o1.order_id() + " (" + f1 + ")"));

  // min(excess 8, available 6) written off, in S1's feed.
  auto feed = w.RightsFeed("S1");
  REQUIRE(feed.size() == feed_before + 1);
  const v1::RightsRelease& r = feed.back().rights_release();
  CHECK(r.write_off());
  CHECK_FALSE(r.answer());
  CHECK(r.units() == 6);
  CHECK(r.seq() == 1);
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 3);
  CHECK(row.central_committed() == 3);
  CHECK(row.available() == 0);
  CHECK(row.written_off_total() == 6);
  CHECK(row.returned_total() == 1);
  w.CheckVerified();

  // Nothing left to write off: the exception still comes, no release.
  w.Apply("S1", World::Loss("A", 1, 1));
  CHECK(w.ExceptionsOfKind("rights_loss").size() == 2);
  CHECK(w.RightsFeed("S1").size() == feed_before + 1);
  w.CheckVerified();
}

TEST_CASE("a delta beyond central's book raises rights_conflict, clamps, and never stalls",
          "[central-rights]") {
  World w;
  w.Receive("S1", "A", 2);
  v1::Order o = w.Capture(Req("web", "X-1", {{"A", 2, 100}}));
  REQUIRE(o.fulfilments(0).site() == "S1");
  auto u = Upd(o, 0, v1::FULFILMENT_SHIPPED, "shipped");
  u.mutable_lines(0)->set_shipped(5);  // more than central ever granted
  w.Send("S1", u);
  auto ex = w.ExceptionsOfKind("rights_conflict");
  REQUIRE(ex.size() == 1);
  CHECK(ex[0].sku() == "A");
  CHECK(ex[0].fulfilment_id() == o.fulfilments(0).fulfilment_id());
  CHECK(StrContains(ex[0].message(), "which is only 2; clamped at 0"));
  v1::CentralRights row = w.Row("S1", "A");
  CHECK(row.central_rights() == 0);
  CHECK(row.central_committed() == 0);
  // The identity no longer holds, and VerifyRights says so.
  auto v = w.rights->Verify();
  REQUIRE(v.ok());
  REQUIRE(v->size() == 1);
  CHECK(StrContains((*v)[0], "S1/A: central_rights 0 != granted 2"));
}

TEST_CASE("policies: defaults by site kind, validation, the site's feed", "[central-rights]") {
  World w;
  auto list = w.rights->ListPolicies();
  REQUIRE(list.ok());
  REQUIRE(list->policies_size() == 3);
  CHECK(list->policies(0).site() == "S1");
  CHECK(list->policies(0).store_share_percent() == 0);
  CHECK(list->policies(0).is_default());
  CHECK(list->policies(1).site() == "S2");
  CHECK(list->policies(1).store_share_percent() == 30);
  CHECK(list->policies(1).is_default());
  // Each site's feed carries its effective policy right after its Site entry.
  auto feed = w.store->ReadFeed("S2", 0, 3);
  REQUIRE(feed->size() >= 2);
  CHECK((*feed)[0].has_site());
  REQUIRE((*feed)[1].has_rights_policy());
  CHECK((*feed)[1].rights_policy().store_share_percent() == 30);
  CHECK((*feed)[1].rights_policy().is_default());

  // Bad policies are refused and change nothing.
  const size_t s2_feed = w.FeedSize("S2");
  auto bad = [&](std::function<void(v1::RightsPolicy*)> edit) {
    v1::RightsPolicy p;
    p.set_site("S2");
    p.set_store_share_percent(50);
    edit(&p);
    auto r = w.rights->SetPolicy(p);
    INFO(p.ShortDebugString());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  CHECK(StrContains(bad([](auto* p) { p->set_store_share_percent(101); }), "0..100"));
  bad([](auto* p) { p->set_store_share_percent(-1); });
  CHECK(StrContains(bad([](auto* p) { p->set_floor_units(-1); }), "floor_units"));
  bad([](auto* p) { p->set_store_share_units(-2); });
  bad([](auto* p) { p->set_refill_below(-3); });
  bad([](auto* p) { p->clear_site(); });
  v1::RightsPolicy unknown;
  unknown.set_site("S9");
  auto not_found = w.rights->SetPolicy(unknown);
  CHECK(not_found.status().code() == StatusCode::kNotFound);
  CHECK(StrContains(not_found.status().message(), "unknown site 'S9'"));
  CHECK(w.FeedSize("S2") == s2_feed);
  CHECK(w.rights->ListPolicies()->policies(1).is_default());

  // A valid one: version 1, fed to the site; again: version 2.
  v1::RightsPolicy p;
  p.set_site("S2");
  p.set_store_share_percent(50);
  p.set_floor_units(2);
  p.set_refill_below(3);
  p.set_is_default(true);  // ignored: a set policy is explicit
  p.set_version(77);       // ignored: central counts
  auto set = w.rights->SetPolicy(p);
  REQUIRE(set.ok());
  CHECK(set->version() == 1);
  CHECK_FALSE(set->is_default());
  CHECK(set->floor_units() == 2);
  REQUIRE(w.FeedSize("S2") == s2_feed + 1);
  auto last = w.RightsFeed("S2").back();
  REQUIRE(last.has_rights_policy());
  CHECK(last.rights_policy().store_share_percent() == 50);
  CHECK(last.rights_policy().refill_below() == 3);
  CHECK(last.rights_policy().version() == 1);
  p.set_store_share_units(4);
  CHECK(w.rights->SetPolicy(p)->version() == 2);
  auto now = w.rights->ListPolicies();
  CHECK(now->policies(1).version() == 2);
  CHECK(now->policies(1).store_share_units() == 4);
  CHECK_FALSE(now->policies(1).is_default());

  // A site that changes kind gets its (default) policy again after the Site entry; a re-import
  // without a change does not.
  const size_t s1_feed = w.FeedSize("S1");
  REQUIRE(w.store->Import("sites", "id,name,kind,region\nS1,East,store,east\n").ok());
  auto s1 = w.store->ReadFeed("S1", s1_feed, 10);
  REQUIRE(s1->size() == 2);
  CHECK((*s1)[0].has_site());
  REQUIRE((*s1)[1].has_rights_policy());
  CHECK((*s1)[1].rights_policy().store_share_percent() == 30);
  REQUIRE(w.store->Import("sites", "id,name,kind,region\nS1,East,store,east\n").ok());
  CHECK(w.FeedSize("S1") == s1_feed + 3);  // one more Site entry only
  // An explicit policy survives a change of kind.
  REQUIRE(w.store->Import("sites", "id,name,kind,region\nS2,West,warehouse,west\n").ok());
  auto s2 = w.RightsFeed("S2").back();
  CHECK(s2.rights_policy().store_share_percent() == 50);
  CHECK(s2.rights_policy().version() == 2);
}

TEST_CASE("listing quantity: available over the channel's sites minus its buffer",
          "[central-rights]") {
  World w;
  REQUIRE(w.store
              ->Import("channels",
                       "id,site_priority,allow_split,listing_buffer\nweb,S1|S2,true,3\n"
                       "shop,S2,true,10\n")
              .ok());
  w.Receive("S1", "A", 10);
  w.Receive("S2", "A", 4);
  w.Receive("S3", "A", 50);  // not a web site
  w.Receive("S1", "B", 2);
  v1::Order o = w.Capture(Req("web", "LI-1", {{"A", 2, 100}}));
  REQUIRE(o.fulfilments(0).site() == "S1");

  v1::ListingsRequest q;
  q.set_channel("web");
  auto l = w.rights->Listings(q);
  REQUIRE(l.ok());
  CHECK(l->channel() == "web");
  REQUIRE(l->listings_size() == 3);  // every SKU of the master data
  CHECK(l->listings(0).sku() == "A");
  CHECK(l->listings(0).central_available() == 12);  // 8 at S1 + 4 at S2
  CHECK(l->listings(0).buffer() == 3);
  CHECK(l->listings(0).quantity() == 9);
  CHECK(l->listings(1).sku() == "B");
  CHECK(l->listings(1).quantity() == 0);  // 2 - 3 floored
  CHECK(l->listings(2).sku() == "C");
  CHECK(l->listings(2).quantity() == 0);
  q.set_channel("shop");
  CHECK(w.rights->Listings(q)->listings(0).quantity() == 0);  // 4 - 10
  q.set_channel("any");                                       // every site, no buffer
  CHECK(w.rights->Listings(q)->listings(0).quantity() == 62);
  q.set_channel("nowhere");
  CHECK(w.rights->Listings(q).status().code() == StatusCode::kNotFound);
  q.clear_channel();
  CHECK(w.rights->Listings(q).status().code() == StatusCode::kInvalidArgument);

  // The buffer is validated on import, all rows or none.
  auto bad = w.store->Import("channels",
                             "id,site_priority,allow_split,listing_buffer\nweb,S1,true,1\n"
                             "x,S1,true,-1\n");
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK(StrContains(bad.status().message(), "line 3: listing_buffer: '-1'"));
  bad = w.store->Import("channels", "id,listing_buffer\ny,lots\n");
  CHECK(StrContains(bad.status().message(), "line 2: listing_buffer"));
  q.set_channel("web");
  CHECK(w.rights->Listings(q)->listings(0).buffer() == 3);
  w.CheckVerified();
}

TEST_CASE("a planner releases unused rights back to a site", "[central-rights]") {
  World w;
  w.Receive("S1", "A", 10);
  v1::Order o = w.Capture(Req("web", "PL-1", {{"A", 4, 100}}));
  REQUIRE(o.fulfilments(0).site() == "S1");
  const size_t feed = w.FeedSize("S1");

  auto refuse = [&](v1::ReleaseRightsRequest r, StatusCode code) {
    auto out = w.rights->Release(r, "planner");
    INFO(r.ShortDebugString() << " -> " << out.status().ToString());
    CHECK(out.status().code() == code);
    CHECK(w.FeedSize("S1") == feed);
    CHECK(w.Row("S1", "A").central_rights() == 10);
  };
  v1::ReleaseRightsRequest r;
  r.set_site("S1");
  r.set_sku("A");
  r.set_units(7);  // 6 available
  refuse(r, StatusCode::kFailedPrecondition);
  r.set_units(0);
  refuse(r, StatusCode::kInvalidArgument);
  r.set_units(-1);
  refuse(r, StatusCode::kInvalidArgument);
  r.set_units(1);
  r.set_site("S9");
  refuse(r, StatusCode::kNotFound);
  r.set_site("S1");
  r.set_sku("ZZZ");
  refuse(r, StatusCode::kNotFound);
  r.clear_sku();
  refuse(r, StatusCode::kInvalidArgument);

  r.set_sku("A");
  r.set_units(6);
  r.set_note("season over");
  auto out = w.rights->Release(r, "planner");
  REQUIRE(out.ok());
  CHECK(out->central_rights() == 4);
  CHECK(out->available() == 0);
  CHECK(out->released_total() == 6);
  CHECK(out->release_seq() == 1);
  REQUIRE(w.FeedSize("S1") == feed + 1);
  const v1::RightsRelease rel = w.RightsFeed("S1").back().rights_release();
  CHECK(rel.units() == 6);
  CHECK(rel.seq() == 1);
  CHECK_FALSE(rel.answer());
  CHECK_FALSE(rel.write_off());
  CHECK(StrContains(rel.reason(), "season over (by planner)"));

  v1::RightsHistoryRequest h;
  h.set_limit(5000);
  CHECK(w.rights->History(h).status().code() == StatusCode::kInvalidArgument);
  h.set_limit(1);
  auto hist = w.rights->History(h);
  REQUIRE(hist->entries_size() == 1);
  CHECK(hist->entries(0).kind() == "release");
  h.set_limit(0);
  h.set_sku("B");
  CHECK(w.rights->History(h)->entries_size() == 0);
  w.CheckVerified();
}

namespace {

// One in-process HTTP call to central's API; waits for the answer.
http::Response Call(central::CentralHttpApi& api, const std::string& method,
                    const std::string& target, const std::string& body = "") {
  http::Request req;
  req.method = method;
  req.target = target;
  const size_t q = target.find('?');
  req.path = target.substr(0, q);
  if (q != std::string::npos) req.query = target.substr(q + 1);
  req.body = body;
  req.remote = "127.0.0.1:1";
  req.headers.emplace_back("x-depot-operator", "tester");
  std::promise<http::Response> p;
  auto f = p.get_future();
  api.Handle(std::move(req), [&p](http::Response r) { p.set_value(std::move(r)); });
  return f.get();
}

}  // namespace

TEST_CASE("the rights routes over HTTP", "[central-rights]") {
  World w;
  metrics::Registry registry;
  central::CentralHttpApi api(w.central.get(), &registry);
  w.Receive("S1", "A", 10);

  auto r = Call(api, "GET", "/v1/rights?site=S1&sku=A");
  REQUIRE(r.status == 200);
  v1::ListRightsResponse list;
  REQUIRE(JsonToMessage(r.body, &list).ok());
  REQUIRE(list.rights_size() == 1);
  CHECK(list.rights(0).central_rights() == 10);
  CHECK(StrContains(r.body, "\"central_rights\":\"10\""));  // int64 as a string

  r = Call(api, "POST", "/v1/rights/release", R"({"site":"S1","sku":"A","units":"11"})");
  CHECK(r.status == 409);
  CHECK(StrContains(r.body, "FAILED_PRECONDITION"));
  r = Call(api, "POST", "/v1/rights/release", R"({"site":"S1","sku":"A","units":3})");
  CHECK(r.status == 200);
  CHECK(StrContains(r.body, "\"central_rights\":\"7\""));
  r = Call(api, "GET", "/v1/rights/release");
  CHECK(r.status == 405);

  r = Call(api, "PUT", "/v1/rights/policies/S2", R"({"store_share_percent":150})");
  CHECK(r.status == 400);
  r = Call(api, "PUT", "/v1/rights/policies/S2", R"({"store_share_percent":40})");
  REQUIRE(r.status == 200);
  v1::RightsPolicy p;
  REQUIRE(JsonToMessage(r.body, &p).ok());
  CHECK(p.site() == "S2");
  CHECK(p.version() == 1);
  r = Call(api, "PUT", "/v1/rights/policies/S9", R"({"store_share_percent":40})");
  CHECK(r.status == 404);
  r = Call(api, "GET", "/v1/rights/policies");
  REQUIRE(r.status == 200);
  v1::ListPoliciesResponse policies;
  REQUIRE(JsonToMessage(r.body, &policies).ok());
  CHECK(policies.policies_size() == 3);

  r = Call(api, "GET", "/v1/rights/history?site=S1&limit=2");
  REQUIRE(r.status == 200);
  v1::RightsHistoryResponse hist;
  REQUIRE(JsonToMessage(r.body, &hist).ok());
  CHECK(hist.entries_size() == 2);
  CHECK(Call(api, "GET", "/v1/rights/history?limit=x").status == 400);

  r = Call(api, "GET", "/v1/listings?channel=web");
  REQUIRE(r.status == 200);
  v1::ListingsResponse listings;
  REQUIRE(JsonToMessage(r.body, &listings).ok());
  CHECK(listings.listings(0).quantity() == 7);
  CHECK(Call(api, "GET", "/v1/listings?channel=nope").status == 404);

  r = Call(api, "GET", "/v1/rights/verify");
  REQUIRE(r.status == 200);
  CHECK(StrContains(r.body, "\"ok\":true"));
  CHECK(Call(api, "GET", "/v1/rights/nothing").status == 404);
}
