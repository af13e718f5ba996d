// The node's selling-rights book (node/rights_book.h) through the ledger's public API, on a real
// SQLite file: policy split, local sales against local rights (offline: no central involved),
// refill requests, central's releases, requests and write-offs, central fulfilments shipped and
// shorted, losses that revoke, short and report, safety stock raised, policy rebalancing, the
// identities Verify checks, and refusals that change nothing.
#include <catch2/catch.hpp>

#include "node/ledger.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;

namespace {

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "W,,Widget,ea,none,false,false,0\n"
    "S,,Safety widget,ea,none,false,false,2\n"
    "FREE,,Service item,ea,none,false,true,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nB1,B,2\n";

using Code = absl::StatusCode;

struct Fixture : testing::LedgerFixture {
  uint64_t feed_seq = 0;

  Fixture() : LedgerFixture("depot-rights-", kSkus, kBins, "clerk") {}

  void Feed(v1::FeedEntry e) {
    e.set_seq(++feed_seq);
    auto mark = ledger->ApplyFeed({e});
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
    REQUIRE(*mark == feed_seq);
  }
  // Central's policy for this node (makes it central-managed).
  void Policy(int percent, int64_t floor = 0, int64_t refill_below = 0, uint64_t version = 1) {
    v1::FeedEntry e;
    auto* p = e.mutable_rights_policy();
    p->set_site("n1");
    p->set_store_share_percent(percent);
    p->set_floor_units(floor);
    p->set_refill_below(refill_below);
    p->set_version(version);
    Feed(e);
  }
  void RightsRelease(const std::string& sku, int64_t units, uint64_t seq, bool answer = false,
                     bool write_off = false) {
    v1::FeedEntry e;
    auto* r = e.mutable_rights_release();
    r->set_sku(sku);
    r->set_units(units);
    r->set_seq(seq);
    r->set_answer(answer);
    r->set_write_off(write_off);
    Feed(e);
  }
  void CentralAsks(const std::string& sku, int64_t units) {
    v1::FeedEntry e;
    e.mutable_rights_request()->set_sku(sku);
    e.mutable_rights_request()->set_units(units);
    Feed(e);
  }
  void Release(const std::string& id, const std::string& sku, int64_t q) {
    v1::FeedEntry e;
    auto* r = e.mutable_release();
    r->set_fulfilment_id(id);
    r->set_order_id(id.substr(0, id.rfind('-')));
    r->set_channel("marketplace");
    r->set_service_level("standard");
    auto* l = r->add_lines();
    l->set_line_no(1);
    l->set_sku(sku);
    l->set_quantity(q);
    Feed(e);
  }
  void Receive(const std::string& sku, int64_t q, const std::string& bin = "A1") {
    auto r = LedgerFixture::Receive(sku, bin, q);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
  }
  absl::StatusOr<v1::OperationResult> Sell(const std::string& sku, int64_t q,
                                           v1::LocalOrderKind kind = v1::COUNTER_SALE) {
    v1::Operation op;
    op.mutable_local_order()->set_kind(kind);
    auto* l = op.mutable_local_order()->add_lines();
    l->set_sku(sku);
    l->set_quantity(q);
    return ledger->Apply(ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Adjust(const std::string& sku, int64_t q,
                                             const std::string& bin = "A1") {
    v1::Operation op;
    auto* a = op.mutable_adjust();
    a->set_sku(sku);
    a->set_bin(bin);
    a->set_quantity(q);
    a->set_reason(q < 0 ? "damaged" : "found");
    return ledger->Apply(ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Do(v1::Operation op) { return ledger->Apply(ctx, op); }

  v1::RightsBook Book(const std::string& sku) {
    auto r = ledger->ListRights(sku);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    if (r->books_size() == 0) {
      v1::RightsBook empty;
      empty.set_sku(sku);
      return empty;
    }
    return r->books(0);
  }
  // Rights events in the outbox after event seq `after`.
  std::vector<v1::RightsEvent> Events(uint64_t after = 0) {
    auto events = ledger->ReadOutbox(after, 100000);
    REQUIRE(events.ok());
    std::vector<v1::RightsEvent> out;
    for (const auto& e : *events) {
      if (e.has_rights()) out.push_back(e.rights());
    }
    return out;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "a node that never heard of central keeps every right local",
                 "[rights]") {
  Receive("W", 10);
  auto b = Book("W");
  CHECK(b.local_rights() == 10);
  CHECK(b.central_granted() == 0);
  CHECK(b.unassigned() == 0);
  CHECK(Events().empty());
  REQUIRE(Sell("W", 4).ok());
  CHECK(Book("W").local_rights() == 6);
  // A manual reservation is a local commitment; releasing it gives the rights back.
  v1::Operation res;
  res.mutable_reserve()->set_sku("W");
  res.mutable_reserve()->set_reference("HOLD-1");
  res.mutable_reserve()->set_quantity(5);
  REQUIRE(Do(res).ok());
  CHECK(Book("W").local_rights() == 1);
  CHECK(Book("W").local_open() == 5);
  v1::Operation con;
  con.mutable_consume()->set_sku("W");
  con.mutable_consume()->set_reference("HOLD-1");
  con.mutable_consume()->set_quantity(2);
  REQUIRE(Do(con).ok());
  v1::Operation rel;
  rel.mutable_release()->set_sku("W");
  rel.mutable_release()->set_reference("HOLD-1");
  REQUIRE(Do(rel).ok());
  b = Book("W");
  CHECK(b.local_open() == 0);
  CHECK(b.local_rights() == 4);
  CHECK(b.on_hand() == 4);
  CHECK(b.local_sold_total() == 6);
  // Non-stock SKUs have no rights at all.
  Receive("FREE", 3);
  REQUIRE(Sell("FREE", 2).ok());
  CHECK(ledger->ListRights("FREE")->books_size() == 0);
  // Asking central is refused: there is none.
  v1::Operation ask;
  ask.mutable_rights_request()->set_sku("W");
  ask.mutable_rights_request()->set_units(1);
  CHECK(Do(ask).status().code() == Code::kFailedPrecondition);
  CHECK(ledger->ListRights("NOPE").status().code() == Code::kNotFound);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "policy split, local sales offline, refused sale asks central once",
                 "[rights]") {
  Policy(30);
  Receive("W", 10);
  auto b = Book("W");
  CHECK(b.local_rights() == 3);
  CHECK(b.central_granted() == 7);
  CHECK(b.grant_seq() == 1);
  auto ev = Events();
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0].has_grant());
  CHECK(ev[0].grant().units() == 7);
  CHECK(ev[0].grant().seq() == 1);
  CHECK(ev[0].grant().reason() == "policy");
  CHECK(ev[0].book().central_granted() == 7);

  // Nobody is connected: the node sells its 3 local rights without a round trip.
  REQUIRE(Sell("W", 2).ok());
  REQUIRE(Sell("W", 1).ok());
  const uint64_t events_before = ledger->LastEventSeq();
  const uint64_t movements_before = ledger->LastSeq();
  auto refused = Sell("W", 2);
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK(std::string(refused.status().message())
            .find("only 0 of SKU 'W' available for local sale at n1 (local selling rights)") !=
        std::string::npos);
  CHECK(ledger->LastSeq() == movements_before);  // the sale wrote nothing
  // ... but central was asked for the missing units, once.
  auto asks = Events(events_before);
  REQUIRE(asks.size() == 1);
  REQUIRE(asks[0].has_request());
  CHECK(asks[0].request().units() == 2);
  CHECK(Book("W").refill_pending());
  CHECK(Sell("W", 1).status().code() == Code::kFailedPrecondition);
  CHECK(Events(events_before).size() == 1);
  // The goods for central's 7 rights are still here: ATP says 7, local rights say 0.
  CHECK(ledger->GetAtp("W")->available() == 7);

  // Central answers with 3 of its rights.
  RightsRelease("W", 3, 1, /*answer=*/true);
  b = Book("W");
  CHECK(b.local_rights() == 3);
  CHECK(b.central_granted() == 4);
  CHECK(b.released_total() == 3);
  CHECK_FALSE(b.refill_pending());
  REQUIRE(Sell("W", 3).ok());
  RequireVerified();
  // History names the transfers, newest first.
  auto h = ledger->RightsHistory("W", 10);
  REQUIRE(h.ok());
  REQUIRE(h->entries_size() >= 3);
  CHECK(h->entries(0).kind() == "answer");
  CHECK(h->entries(0).units() == 3);
}

TEST_CASE_METHOD(Fixture, "refill below the threshold, once until answered", "[rights]") {
  Policy(50, /*floor=*/0, /*refill_below=*/3);
  Receive("W", 10);
  CHECK(Book("W").local_rights() == 5);
  REQUIRE(Sell("W", 3).ok());  // local 2 < 3: ask
  auto b = Book("W");
  CHECK(b.refill_pending());
  int requests = 0;
  for (const auto& e : Events()) requests += e.has_request();
  CHECK(requests == 1);
  REQUIRE(Sell("W", 1).ok());
  requests = 0;
  for (const auto& e : Events()) requests += e.has_request();
  CHECK(requests == 1);
  RightsRelease("W", 0, 0, /*answer=*/true);  // central had nothing to spare
  CHECK_FALSE(Book("W").refill_pending());     // not asked again until the next sale
  requests = 0;
  for (const auto& e : Events()) requests += e.has_request();
  CHECK(requests == 1);
  REQUIRE(Sell("W", 1).ok());
  CHECK(Book("W").refill_pending());
  requests = 0;
  for (const auto& e : Events()) requests += e.has_request();
  CHECK(requests == 2);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "central's allocations ship against its rights; shorts come back",
                 "[rights]") {
  Policy(0);  // a warehouse: every right to central
  Receive("W", 10);
  CHECK(Book("W").central_granted() == 10);
  CHECK(Sell("W", 1).status().code() == Code::kFailedPrecondition);
  Release("M1-1", "W", 4);
  v1::Operation ship;
  ship.mutable_ship()->set_fulfilment_id("M1-1");
  ship.mutable_ship()->set_carrier("DHL");
  ship.mutable_ship()->set_tracking("T1");
  auto* pkg = ship.mutable_ship()->add_packages();
  pkg->set_weight_g(100);
  pkg->set_length_mm(1);
  pkg->set_width_mm(1);
  pkg->set_height_mm(1);
  v1::Operation pick;
  pick.mutable_pick()->set_fulfilment_id("M1-1");
  pick.mutable_pick()->set_bin("A1");
  pick.mutable_pick()->set_item("W");
  pick.mutable_pick()->set_quantity(4);
  REQUIRE(Do(pick).ok());
  auto shipped = Do(ship);
  INFO(shipped.status().ToString());
  REQUIRE(shipped.ok());
  auto b = Book("W");
  CHECK(b.central_granted() == 6);
  CHECK(b.shipped_total() == 4);
  CHECK(b.on_hand() == 6);

  // A short: central's rights come back as unassigned and are granted again by the policy.
  Release("M2-1", "W", 3);
  v1::Operation sp;
  sp.mutable_short_pick()->set_fulfilment_id("M2-1");
  sp.mutable_short_pick()->set_line_no(1);
  sp.mutable_short_pick()->set_quantity(1);
  sp.mutable_short_pick()->set_reason("damaged");
  REQUIRE(Do(sp).ok());
  b = Book("W");
  CHECK(b.returned_total() == 1);
  CHECK(b.central_granted() == 6);  // returned 1, granted again 1 (the unit is still on hand)
  CHECK(b.granted_total() == 11);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "a loss revokes local rights, shorts open orders and is reported",
                 "[rights]") {
  Policy(30);
  Receive("W", 10);  // local 3, central 7
  Release("M1-1", "W", 5);  // central allocated 5: reserved here
  CHECK(ledger->GetAtp("W")->available() == 5);
  const uint64_t after = ledger->LastEventSeq();
  // 2 damaged: local rights cover it (3 -> 1), central's 7 are still backed by 8.
  REQUIRE(Adjust("W", -2).ok());
  auto b = Book("W");
  CHECK(b.local_rights() == 1);
  CHECK(b.local_revoked_total() == 2);
  CHECK(b.excess() == 0);
  for (const auto& e : Events(after)) CHECK_FALSE(e.has_loss());
  // 5 more lost: on hand 3 backs neither the reserved 5 nor central's 7.
  REQUIRE(Adjust("W", -5).ok());
  b = Book("W");
  CHECK(b.local_rights() == 0);
  auto f = ledger->GetFulfilment("M1-1");
  REQUIRE(f.ok());
  CHECK(f->lines(0).short_quantity() == 2);  // reserved 5, on hand 3: 2 shorted
  CHECK(f->lines(0).short_reason() == "stock_loss");
  CHECK(b.returned_total() == 2);
  CHECK(b.central_granted() == 5);
  CHECK(b.excess() == 2);  // central's 5 rights over 3 units
  CHECK(b.excess_reported() == 2);
  std::vector<v1::RightsEvent> losses;
  for (const auto& e : Events(after)) {
    if (e.has_loss()) losses.push_back(e);
  }
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].loss().units_lost() == 5);
  CHECK(losses[0].loss().excess() == 2);
  REQUIRE(losses[0].loss().fulfilment_ids_size() == 1);
  CHECK(losses[0].loss().fulfilment_ids(0) == "M1-1");
  RequireVerified();  // claimed 5 <= sellable 3 + reported 2

  // Central writes off the 2 unbacked rights: the excess is gone.
  RightsRelease("W", 2, 1, false, /*write_off=*/true);
  b = Book("W");
  CHECK(b.central_granted() == 3);
  CHECK(b.central_written_off_total() == 2);
  CHECK(b.excess() == 0);
  CHECK(b.excess_reported() == 0);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "raising safety stock shrinks what rights may cover", "[rights]") {
  Policy(50);
  Receive("S", 10);  // sellable 8: local 4, central 4
  CHECK(Book("S").local_rights() == 4);
  CHECK(Book("S").central_granted() == 4);
  v1::FeedEntry e;
  auto* sku = e.mutable_sku();
  sku->set_code("S");
  sku->set_name("Safety widget");
  sku->set_tracking(v1::TRACKING_NONE);
  sku->set_safety_stock(5);  // sellable 5
  sku->set_version(2);
  Feed(e);
  auto b = Book("S");
  CHECK(b.local_rights() == 1);
  CHECK(b.central_granted() == 4);
  CHECK(b.excess() == 0);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "central asks: the node answers with half of what it can spare",
                 "[rights]") {
  Policy(100, /*floor=*/2);
  Receive("W", 9);
  CHECK(Book("W").local_rights() == 9);
  const uint64_t after = ledger->LastEventSeq();
  CentralAsks("W", 10);
  auto b = Book("W");
  CHECK(b.local_rights() == 5);  // spare 7 above the floor: half rounded up = 4
  CHECK(b.central_granted() == 4);
  auto ev = Events(after);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].grant().units() == 4);
  CHECK(ev[0].grant().reason() == "answer");
  CHECK(ev[0].grant().seq() == 1);
  CentralAsks("W", 1);  // asks for 1: gets 1
  CHECK(Book("W").central_granted() == 5);
  CentralAsks("NOPE", 1);  // unknown SKU: ignored, the feed goes on
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "a new policy rebalances local rights above its target", "[rights]") {
  Receive("W", 10);  // standalone: all 10 local
  CHECK(Book("W").local_rights() == 10);
  Policy(20, 0, 0, 1);  // joins central: local target 2, 8 granted
  auto b = Book("W");
  CHECK(b.local_rights() == 2);
  CHECK(b.central_granted() == 8);
  CHECK(b.local_out_total() == 8);
  bool rebalance = false;
  for (const auto& e : Events()) rebalance |= e.has_grant() && e.grant().reason() == "rebalance";
  CHECK(rebalance);
  // An older policy version is ignored; the policy survives a restart.
  Policy(90, 0, 0, 0);
  Reopen();
  auto rights = ledger->ListRights("");
  REQUIRE(rights.ok());
  CHECK(rights->policy().store_share_percent() == 90);  // version 0 = unversioned: applied
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "click-and-collect holds local rights until hand-out", "[rights]") {
  Policy(50);
  Receive("W", 8);  // local 4
  auto c = Sell("W", 3, v1::CLICK_AND_COLLECT);
  REQUIRE(c.ok());
  auto b = Book("W");
  CHECK(b.local_rights() == 1);
  CHECK(b.local_open() == 3);
  v1::Operation ho;
  ho.mutable_hand_out()->set_fulfilment_id(c->fulfilment().fulfilment_id());
  REQUIRE(Do(ho).ok());
  b = Book("W");
  CHECK(b.local_open() == 0);
  CHECK(b.local_sold_total() == 3);
  CHECK(b.on_hand() == 5);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "bad rights requests are refused and change nothing", "[rights]") {
  Policy(30);
  Receive("W", 10);
  const uint64_t events = ledger->LastEventSeq();
  v1::Operation ask;
  ask.mutable_rights_request()->set_sku("W");
  ask.mutable_rights_request()->set_units(0);
  CHECK(Do(ask).status().code() == Code::kInvalidArgument);
  ask.mutable_rights_request()->set_units(-3);
  CHECK(Do(ask).status().code() == Code::kInvalidArgument);
  ask.mutable_rights_request()->set_sku("NOPE");
  ask.mutable_rights_request()->set_units(3);
  CHECK(Do(ask).status().code() == Code::kNotFound);
  ask.mutable_rights_request()->set_sku("FREE");
  CHECK(Do(ask).status().code() == Code::kFailedPrecondition);
  CHECK(ledger->LastEventSeq() == events);
  ask.mutable_rights_request()->set_sku("W");
  auto ok = Do(ask);
  REQUIRE(ok.ok());
  CHECK(ok->rights().refill_pending());
  CHECK(ledger->LastEventSeq() == events + 1);
  RequireVerified();
}
