// Order fulfilment at the node (node/fulfilment.h) through the ledger's public API: releases and
// cancels from central's feed, waves, pick, short pick, pack, ship, counter sales and
// click-and-collect, against a real SQLite file in a fresh temporary directory.
#include <SQLiteCpp/Database.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/clock.h"
#include "node/fulfilment.h"
#include "node/ledger.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;
using node::Ledger;

namespace {

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "PLAIN,4006381333931,Plain widget,ea,none,false,false,0\n"
    "LOT,5901234123457,Yoghurt,ea,lot,true,false,0\n"
    "SER,96385074,Phone,ea,serial,false,false,0\n"
    "OTHER,,Other widget,ea,none,false,false,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nA2,A,2\nB1,B,3\n";

using Code = absl::StatusCode;

struct Fixture : testing::LedgerFixture {
  uint64_t feed_seq = 0;

  Fixture() : LedgerFixture("depot-fulfilment-", kSkus, kBins, "picker") {}

  absl::StatusOr<v1::OperationResult> Apply(const v1::Operation& op) {
    return ledger->Apply(ctx, op);
  }
  void Receive(const std::string& sku, const std::string& bin, int64_t qty,
               const std::string& lot = "", const std::string& expiry = "",
               std::vector<std::string> serials = {}) {
    auto res = LedgerFixture::Receive(sku, bin, qty, lot, expiry, std::move(serials));
    INFO(res.status().ToString());
    REQUIRE(res.ok());
  }

  // Central's feed.
  void Feed(v1::FeedEntry e) {
    e.set_seq(++feed_seq);
    auto mark = ledger->ApplyFeed({e});
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
    REQUIRE(*mark == feed_seq);
  }
  void Release(const std::string& id,
               std::vector<std::tuple<uint32_t, std::string, int64_t>> lines,
               const std::string& service_level = "standard") {
    v1::FeedEntry e;
    auto* r = e.mutable_release();
    r->set_fulfilment_id(id);
    r->set_order_id(id.substr(0, id.rfind('-')));
    r->set_channel("web");
    r->set_service_level(service_level);
    r->mutable_ship_to()->set_name("Ada");
    for (auto& [no, sku, q] : lines) {
      auto* l = r->add_lines();
      l->set_line_no(no);
      l->set_sku(sku);
      l->set_quantity(q);
    }
    Feed(e);
  }
  void Cancel(const std::string& id, const std::string& reason = "customer") {
    v1::FeedEntry e;
    e.mutable_cancel()->set_fulfilment_id(id);
    e.mutable_cancel()->set_reason(reason);
    Feed(e);
  }

  v1::NodeFulfilment Get(const std::string& id) {
    auto f = ledger->GetFulfilment(id);
    INFO(f.status().ToString());
    REQUIRE(f.ok());
    return *f;
  }
  absl::StatusOr<v1::OperationResult> Pick(const std::string& id, const std::string& bin,
                                           const std::string& item, int64_t q,
                                           const std::string& lot = "",
                                           std::vector<std::string> serials = {},
                                           const std::string& request_id = "") {
    v1::Operation op;
    auto* p = op.mutable_pick();
    p->set_fulfilment_id(id);
    p->set_bin(bin);
    p->set_item(item);
    p->set_quantity(q);
    p->set_lot(lot);
    for (auto& s : serials) p->add_serials(s);
    p->set_request_id(request_id);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Short(const std::string& id, uint32_t line, int64_t q,
                                            const std::string& reason) {
    v1::Operation op;
    auto* s = op.mutable_short_pick();
    s->set_fulfilment_id(id);
    s->set_line_no(line);
    s->set_quantity(q);
    s->set_reason(reason);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Pack(const std::string& id, int64_t weight = 1200,
                                           int64_t dim = 300) {
    v1::Operation op;
    op.mutable_pack()->set_fulfilment_id(id);
    auto* p = op.mutable_pack()->add_packages();
    p->set_weight_g(weight);
    p->set_length_mm(dim);
    p->set_width_mm(200);
    p->set_height_mm(100);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Ship(const std::string& id, const std::string& carrier = "DHL",
                                           const std::string& tracking = "TRK1") {
    v1::Operation op;
    op.mutable_ship()->set_fulfilment_id(id);
    op.mutable_ship()->set_carrier(carrier);
    op.mutable_ship()->set_tracking(tracking);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Wave(uint32_t max = 0, const std::string& level = "") {
    v1::Operation op;
    op.mutable_wave()->set_max_orders(max);
    op.mutable_wave()->set_service_level(level);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Local(
      v1::LocalOrderKind kind, std::vector<std::tuple<std::string, int64_t, int64_t>> lines,
      const std::string& request_id = "") {
    v1::Operation op;
    auto* lo = op.mutable_local_order();
    lo->set_kind(kind);
    lo->set_request_id(request_id);
    for (auto& [sku, q, price] : lines) {
      auto* l = lo->add_lines();
      l->set_sku(sku);
      l->set_quantity(q);
      l->set_unit_price_cents(price);
    }
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> HandOut(const std::string& id) {
    v1::Operation op;
    op.mutable_hand_out()->set_fulfilment_id(id);
    return Apply(op);
  }

  int64_t OnHand(const std::string& sku, const std::string& bin, const std::string& lot = "") {
    auto stock = ledger->GetStock(sku, "");
    REQUIRE(stock.ok());
    for (const auto& b : stock->balances()) {
      if (b.bin() == bin && b.lot() == lot) return b.on_hand();
    }
    return 0;
  }
  int64_t Reserved(const std::string& sku, const std::string& ref) {
    auto r = ledger->ListReservations(sku);
    REQUIRE(r.ok());
    for (const auto& x : r->reservations()) {
      if (x.reference() == ref) return x.quantity();
    }
    return 0;
  }
  int64_t StagingUnits() {
    auto stock = ledger->GetStock("", node::kStagingBin);
    REQUIRE(stock.ok());
    int64_t n = 0;
    for (const auto& b : stock->balances()) n += b.on_hand();
    return n;
  }
  // Fulfilment updates in the outbox after event seq `after`.
  std::vector<v1::FulfilmentUpdate> Updates(uint64_t after = 0) {
    auto events = ledger->ReadOutbox(after, 100000);
    REQUIRE(events.ok());
    std::vector<v1::FulfilmentUpdate> out;
    for (const auto& e : *events) {
      if (e.has_fulfilment()) out.push_back(e.fulfilment());
    }
    return out;
  }
  std::vector<std::string> Changes(const std::string& id, uint64_t after = 0) {
    std::vector<std::string> out;
    for (const auto& u : Updates(after)) {
      if (u.fulfilment_id() == id) out.push_back(u.change());
    }
    return out;
  }

  // What must not change when a request is refused.
  struct Snapshot {
    uint64_t movements, events;
    std::string fulfilments;
  };
  Snapshot Snap() {
    auto all = ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "", 10000);
    REQUIRE(all.ok());
    auto waves = ledger->ListWaves();
    REQUIRE(waves.ok());
    return {ledger->LastSeq(), ledger->LastEventSeq(),
            all->SerializeAsString() + waves->SerializeAsString()};
  }
  void RequireUnchanged(const Snapshot& before) {
    Snapshot now = Snap();
    CHECK(now.movements == before.movements);
    CHECK(now.events == before.events);
    CHECK(now.fulfilments == before.fulfilments);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "release, wave, pick by SKU and GTIN, pack and ship", "[fulfilment]") {
  Receive("PLAIN", "B1", 5);
  Receive("PLAIN", "A1", 5);
  Receive("LOT", "A1", 5, "L2", "2031-06-01");
  Receive("LOT", "A2", 3, "L1", "2031-01-01");
  const uint64_t events0 = ledger->LastEventSeq();

  Release("O1-1", {{1, "PLAIN", 6}, {2, "LOT", 4}});
  auto f = Get("O1-1");
  CHECK(f.status() == v1::FULFILMENT_ACCEPTED);
  CHECK(f.order_id() == "O1");
  CHECK(f.ship_to().name() == "Ada");
  REQUIRE(f.lines_size() == 2);
  CHECK(f.lines(0).reserved() == 6);
  CHECK(f.lines(1).reserved() == 4);
  CHECK(f.lines(0).short_quantity() == 0);
  CHECK(Reserved("PLAIN", "O1-1") == 6);
  CHECK(Reserved("LOT", "O1-1") == 4);
  CHECK(ledger->GetAtp("PLAIN")->available() == 4);
  {
    auto updates = Updates(events0);
    REQUIRE(updates.size() == 1);
    CHECK(updates[0].change() == "accepted");
    CHECK(updates[0].status() == v1::FULFILMENT_ACCEPTED);
    CHECK(updates[0].operator_id() == "central");
    CHECK(updates[0].hlc() > 0);
  }

  // The pick list: first expiry first out for lots, then bin walk order; sorted by walk order.
  auto w = Wave();
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  REQUIRE(w->has_wave());
  CHECK(w->wave().wave_id() == "W1");
  REQUIRE(w->wave().fulfilment_ids_size() == 1);
  const auto& tasks = w->wave().tasks();
  REQUIRE(tasks.size() == 4);
  CHECK((tasks[0].bin() == "A1" && tasks[0].sku() == "LOT" && tasks[0].lot() == "L2" &&
         tasks[0].quantity() == 1 && tasks[0].expiry() == "2031-06-01"));
  CHECK((tasks[1].bin() == "A1" && tasks[1].sku() == "PLAIN" && tasks[1].quantity() == 5));
  CHECK((tasks[2].bin() == "A2" && tasks[2].sku() == "LOT" && tasks[2].lot() == "L1" &&
         tasks[2].quantity() == 3));
  CHECK((tasks[3].bin() == "B1" && tasks[3].sku() == "PLAIN" && tasks[3].quantity() == 1));
  CHECK(Get("O1-1").wave_id() == "W1");
  CHECK(Wave().status().code() == Code::kFailedPrecondition);  // nothing left to wave

  // Pick by SKU code and by GTIN.
  auto p1 = Pick("O1-1", "A1", "PLAIN", 5);
  INFO(p1.status().ToString());
  REQUIRE(p1.ok());
  CHECK(p1->fulfilment().status() == v1::FULFILMENT_PICKING);
  CHECK(p1->fulfilment().lines(0).picked() == 5);
  REQUIRE(p1->movements_size() == 1);
  CHECK(p1->movements(0).type() == v1::MOVE);
  CHECK(p1->movements(0).to_bin() == node::kStagingBin);
  CHECK(p1->movements(0).reference() == "O1-1");
  REQUIRE(Pick("O1-1", "B1", "4006381333931", 1).ok());
  REQUIRE(Pick("O1-1", "A2", "5901234123457", 3, "L1").ok());
  auto p4 = Pick("O1-1", "A1", "LOT", 1, "L2");
  REQUIRE(p4.ok());
  CHECK(p4->fulfilment().status() == v1::FULFILMENT_PICKED);
  CHECK(StagingUnits() == 10);
  CHECK(OnHand("PLAIN", node::kStagingBin) == 6);
  CHECK(OnHand("LOT", node::kStagingBin, "L1") == 3);
  CHECK(ledger->GetAtp("PLAIN")->available() == 4);  // picked goods stay reserved
  {
    auto wave = ledger->GetWave("W1");
    REQUIRE(wave.ok());
    for (const auto& t : wave->tasks()) CHECK(t.picked() == t.quantity());
  }
  RequireVerified();

  auto packed = Pack("O1-1");
  INFO(packed.status().ToString());
  REQUIRE(packed.ok());
  CHECK(packed->fulfilment().status() == v1::FULFILMENT_PACKED);
  REQUIRE(packed->fulfilment().packages_size() == 1);
  const auto& pkg = packed->fulfilment().packages(0);
  CHECK(pkg.package_id() == "O1-1-P1");
  REQUIRE(pkg.items_size() == 2);
  CHECK((pkg.items(0).sku() == "PLAIN" && pkg.items(0).quantity() == 6));
  CHECK((pkg.items(1).sku() == "LOT" && pkg.items(1).quantity() == 4));
  CHECK(packed->movements_size() == 0);

  const uint64_t moves_before_ship = ledger->LastSeq();
  auto shipped = Ship("O1-1");
  INFO(shipped.status().ToString());
  REQUIRE(shipped.ok());
  CHECK(shipped->fulfilment().status() == v1::FULFILMENT_SHIPPED);
  CHECK(shipped->fulfilment().carrier() == "DHL");
  CHECK(shipped->fulfilment().tracking() == "TRK1");
  CHECK(shipped->fulfilment().lines(0).shipped() == 6);
  CHECK(shipped->fulfilment().lines(1).shipped() == 4);
  CHECK(shipped->fulfilment().lines(0).reserved() == 0);
  // One CONSUME per (SKU, lot) from the staging bin, sharing one op_seq.
  CHECK(ledger->LastSeq() == moves_before_ship + 3);
  for (const auto& m : shipped->movements()) {
    CHECK(m.type() == v1::CONSUME);
    CHECK(m.bin() == node::kStagingBin);
    CHECK(m.reference() == "O1-1");
    CHECK(m.op_seq() == shipped->movements(0).seq());
  }
  CHECK(StagingUnits() == 0);
  CHECK(Reserved("PLAIN", "O1-1") == 0);
  CHECK(Reserved("LOT", "O1-1") == 0);
  CHECK(ledger->GetAtp("PLAIN")->on_hand() == 4);
  CHECK(ledger->GetAtp("PLAIN")->available() == 4);
  CHECK(ledger->GetAtp("LOT")->on_hand() == 4);
  RequireVerified();

  CHECK(Changes("O1-1", events0) == std::vector<std::string>{"accepted", "picked", "picked",
                                                             "picked", "picked", "packed",
                                                             "shipped"});
  auto updates = Updates(events0);
  const auto& last = updates.back();
  CHECK(last.status() == v1::FULFILMENT_SHIPPED);
  CHECK(last.carrier() == "DHL");
  CHECK(last.packages_size() == 1);
  CHECK(last.wave_id() == "W1");
  CHECK(last.operator_id() == "picker");
  CHECK(last.lines(0).shipped() == 6);
  for (size_t i = 1; i < updates.size(); ++i) CHECK(updates[i].hlc() > updates[i - 1].hlc());

  // Reads.
  auto shipped_list = ledger->ListFulfilments(v1::FULFILMENT_SHIPPED, "", 100);
  REQUIRE(shipped_list.ok());
  CHECK(shipped_list->fulfilments_size() == 1);
  CHECK(ledger->ListFulfilments(v1::FULFILMENT_ACCEPTED, "", 100)->fulfilments_size() == 0);
  CHECK(ledger->ListFulfilments(v1::FULFILMENT_STATUS_UNSPECIFIED, "W1", 100)
            ->fulfilments_size() == 1);
  CHECK(ledger->ListWaves()->waves_size() == 1);
  CHECK(ledger->FulfilmentCounts()->at(v1::FULFILMENT_SHIPPED) == 1);
}

TEST_CASE_METHOD(Fixture, "serial-tracked goods are picked by serial and ship by serial",
                 "[fulfilment]") {
  Receive("SER", "A2", 3, "", "", {"S1", "S2", "S3"});
  Release("O2-1", {{1, "SER", 2}});
  CHECK(Pick("O2-1", "A2", "SER", 2).status().code() == Code::kInvalidArgument);  // no serials
  REQUIRE(Pick("O2-1", "A2", "96385074", 2, "", {"S1", "S3"}).ok());
  REQUIRE(Pack("O2-1").ok());
  auto s = Ship("O2-1");
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  REQUIRE(s->movements_size() == 1);
  CHECK(s->movements(0).serials_size() == 2);
  CHECK(OnHand("SER", "A2") == 1);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "short at release: reserve what ATP allows, the rest is short",
                 "[fulfilment]") {
  Receive("PLAIN", "A1", 2);
  Release("O3-1", {{1, "PLAIN", 5}, {2, "NOPE", 1}});
  auto f = Get("O3-1");
  CHECK(f.status() == v1::FULFILMENT_ACCEPTED);
  CHECK(f.lines(0).reserved() == 2);
  CHECK(f.lines(0).short_quantity() == 3);
  CHECK(f.lines(0).short_reason() == "no_stock_at_release");
  CHECK(f.lines(1).reserved() == 0);
  CHECK(f.lines(1).short_quantity() == 1);
  CHECK(f.lines(1).short_reason() == "unknown_sku");
  CHECK(Reserved("PLAIN", "O3-1") == 2);
  auto u = Updates().back();
  CHECK(u.change() == "accepted");
  CHECK(u.lines(0).short_quantity() == 3);

  // Nothing left at all: accepted with every line short, then cancelled at once.
  const uint64_t events0 = ledger->LastEventSeq();
  const uint64_t movements0 = ledger->LastSeq();
  Release("O4-1", {{1, "PLAIN", 3}});
  auto g = Get("O4-1");
  CHECK(g.status() == v1::FULFILMENT_CANCELLED);
  CHECK(g.lines(0).short_quantity() == 3);
  CHECK(g.lines(0).reserved() == 0);
  auto updates = Updates(events0);
  REQUIRE(updates.size() == 2);
  CHECK(updates[0].change() == "accepted");
  CHECK(updates[0].status() == v1::FULFILMENT_ACCEPTED);
  CHECK(updates[0].lines(0).short_quantity() == 3);
  CHECK(updates[1].change() == "cancelled");
  CHECK(updates[1].status() == v1::FULFILMENT_CANCELLED);
  CHECK(updates[1].note() == "no stock at release");
  CHECK(ledger->LastSeq() == movements0);  // no movement at all
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "short pick releases the reservation and reports the short",
                 "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Receive("OTHER", "A1", 5);
  Release("O5-1", {{1, "PLAIN", 5}, {2, "OTHER", 2}});
  REQUIRE(Pick("O5-1", "A1", "PLAIN", 2).ok());
  REQUIRE(Pick("O5-1", "A1", "OTHER", 2).ok());
  CHECK(Short("O5-1", 1, 0, "").status().code() == Code::kInvalidArgument);
  CHECK(Short("O5-1", 1, 0, "lazy").status().code() == Code::kInvalidArgument);
  CHECK(Short("O5-1", 9, 0, "damaged").status().code() == Code::kNotFound);
  CHECK(Short("O5-1", 1, 4, "damaged").status().code() == Code::kFailedPrecondition);
  CHECK(Short("O5-1", 2, 0, "damaged").status().code() == Code::kFailedPrecondition);
  auto s = Short("O5-1", 1, 0, "damaged");
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  CHECK(s->fulfilment().status() == v1::FULFILMENT_PICKED);
  CHECK(s->fulfilment().lines(0).short_quantity() == 3);
  CHECK(s->fulfilment().lines(0).reserved() == 2);
  CHECK(s->fulfilment().lines(0).short_reason() == "damaged");
  REQUIRE(s->movements_size() == 1);
  CHECK(s->movements(0).type() == v1::RELEASE);
  CHECK(Reserved("PLAIN", "O5-1") == 2);
  auto u = Updates().back();
  CHECK(u.change() == "short");
  CHECK(u.note() == "damaged");
  CHECK(u.lines(0).short_quantity() == 3);
  REQUIRE(Pack("O5-1").ok());
  REQUIRE(Ship("O5-1").ok());
  CHECK(Get("O5-1").lines(0).shipped() == 2);
  CHECK(ledger->GetAtp("PLAIN")->on_hand() == 3);
  CHECK(ledger->GetAtp("PLAIN")->reserved() == 0);
  RequireVerified();

  // Everything short and nothing picked: the fulfilment is cancelled (the update is "short").
  Receive("PLAIN", "A2", 3);
  Release("O6-1", {{1, "PLAIN", 3}});
  REQUIRE(Short("O6-1", 1, 1, "not_found").ok());
  CHECK(Get("O6-1").status() == v1::FULFILMENT_ACCEPTED);
  auto all = Short("O6-1", 1, 0, "not_found");
  REQUIRE(all.ok());
  CHECK(all->fulfilment().status() == v1::FULFILMENT_CANCELLED);
  CHECK(all->fulfilment().lines(0).short_quantity() == 3);
  CHECK(Updates().back().change() == "short");
  CHECK(Updates().back().status() == v1::FULFILMENT_CANCELLED);
  CHECK(Reserved("PLAIN", "O6-1") == 0);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "cancel before pick, after pick and after ship", "[fulfilment]") {
  Receive("PLAIN", "A1", 3);
  Receive("PLAIN", "B1", 5);
  Receive("LOT", "A2", 4, "L1", "2031-01-01");

  SECTION("before pick: the reservation is released") {
    Release("O7-1", {{1, "PLAIN", 4}});
    CHECK(Reserved("PLAIN", "O7-1") == 4);
    Cancel("O7-1");
    auto f = Get("O7-1");
    CHECK(f.status() == v1::FULFILMENT_CANCELLED);
    CHECK(f.cancel_requested());
    CHECK(f.lines(0).reserved() == 0);
    CHECK(Reserved("PLAIN", "O7-1") == 0);
    CHECK(Updates().back().change() == "cancelled");
    CHECK(Updates().back().note() == "customer");
    // Duplicates (new feed entries with the same content) change nothing.
    const uint64_t events = ledger->LastEventSeq(), moves = ledger->LastSeq();
    Cancel("O7-1");
    Release("O7-1", {{1, "PLAIN", 4}});
    CHECK(ledger->LastEventSeq() == events);
    CHECK(ledger->LastSeq() == moves);
    CHECK(Get("O7-1").status() == v1::FULFILMENT_CANCELLED);
    // A pick on a cancelled fulfilment is refused.
    CHECK(Pick("O7-1", "A1", "PLAIN", 1).status().code() == Code::kFailedPrecondition);
    RequireVerified();
  }
  SECTION("after pick: goods go back to their bins, staging is empty") {
    Release("O8-1", {{1, "PLAIN", 5}, {2, "LOT", 2}});
    REQUIRE(Pick("O8-1", "A1", "PLAIN", 3).ok());
    REQUIRE(Pick("O8-1", "B1", "PLAIN", 1).ok());
    REQUIRE(Pick("O8-1", "A2", "LOT", 2, "L1").ok());
    CHECK(StagingUnits() == 6);
    Cancel("O8-1");
    auto f = Get("O8-1");
    CHECK(f.status() == v1::FULFILMENT_CANCELLED);
    CHECK(f.lines(0).picked() == 0);
    CHECK(StagingUnits() == 0);
    CHECK(OnHand("PLAIN", "A1") == 3);
    CHECK(OnHand("PLAIN", "B1") == 5);
    CHECK(OnHand("LOT", "A2", "L1") == 4);
    CHECK(Reserved("PLAIN", "O8-1") == 0);
    CHECK(Reserved("LOT", "O8-1") == 0);
    CHECK(ledger->GetAtp("PLAIN")->available() == 8);
    CHECK(Updates().back().change() == "cancelled");
    RequireVerified();
  }
  SECTION("after pack: goods go back too") {
    Release("O9-1", {{1, "PLAIN", 2}});
    REQUIRE(Pick("O9-1", "B1", "PLAIN", 2).ok());
    REQUIRE(Pack("O9-1").ok());
    Cancel("O9-1");
    CHECK(Get("O9-1").status() == v1::FULFILMENT_CANCELLED);
    CHECK(OnHand("PLAIN", "B1") == 5);
    CHECK(StagingUnits() == 0);
    RequireVerified();
  }
  SECTION("after ship: refused, nothing changes") {
    Release("O10-1", {{1, "PLAIN", 2}});
    REQUIRE(Pick("O10-1", "A1", "PLAIN", 2).ok());
    REQUIRE(Pack("O10-1").ok());
    REQUIRE(Ship("O10-1").ok());
    const uint64_t moves = ledger->LastSeq(), events = ledger->LastEventSeq();
    auto atp = *ledger->GetAtp("PLAIN");
    Cancel("O10-1", "too late");
    auto f = Get("O10-1");
    CHECK(f.status() == v1::FULFILMENT_SHIPPED);
    CHECK(f.cancel_requested());
    CHECK(ledger->LastSeq() == moves);
    CHECK(ledger->LastEventSeq() == events + 1);
    auto u = Updates().back();
    CHECK(u.change() == "cancel_refused");
    CHECK(u.status() == v1::FULFILMENT_SHIPPED);
    CHECK(u.note() == "too late");
    CHECK(ledger->GetAtp("PLAIN")->SerializeAsString() == atp.SerializeAsString());
    Cancel("O10-1", "too late");  // asked again: answered already
    CHECK(ledger->LastEventSeq() == events + 1);
    RequireVerified();
  }
  SECTION("cancel of an unknown fulfilment: a later release stays cancelled") {
    Cancel("O11-1");
    auto f = Get("O11-1");
    CHECK(f.status() == v1::FULFILMENT_CANCELLED);
    CHECK(Updates().back().change() == "cancelled");
    const uint64_t events = ledger->LastEventSeq(), moves = ledger->LastSeq();
    Release("O11-1", {{1, "PLAIN", 1}});
    CHECK(Get("O11-1").status() == v1::FULFILMENT_CANCELLED);
    CHECK(ledger->LastEventSeq() == events);
    CHECK(ledger->LastSeq() == moves);
    CHECK(Reserved("PLAIN", "O11-1") == 0);
  }
}

TEST_CASE_METHOD(Fixture, "duplicate feed entries are no-ops", "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Release("O12-1", {{1, "PLAIN", 2}});
  const uint64_t events = ledger->LastEventSeq(), moves = ledger->LastSeq();
  Release("O12-1", {{1, "PLAIN", 2}});  // the same release again under a new feed seq
  CHECK(ledger->LastEventSeq() == events);
  CHECK(ledger->LastSeq() == moves);
  CHECK(Reserved("PLAIN", "O12-1") == 2);
  // The same feed entry redelivered (seq at or below the mark) is skipped by the mark.
  v1::FeedEntry again;
  again.set_seq(feed_seq);
  again.mutable_cancel()->set_fulfilment_id("O12-1");
  REQUIRE(ledger->ApplyFeed({again}).ok());
  CHECK(Get("O12-1").status() == v1::FULFILMENT_ACCEPTED);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "counter sale and click-and-collect", "[fulfilment]") {
  Receive("PLAIN", "A1", 4);
  Receive("PLAIN", "B1", 6);
  Receive("LOT", "A1", 2, "L2", "2031-06-01");
  Receive("LOT", "B1", 2, "L1", "2031-01-01");

  auto sale = Local(v1::COUNTER_SALE, {{"PLAIN", 5, 250}, {"LOT", 1, 120}});
  INFO(sale.status().ToString());
  REQUIRE(sale.ok());
  const auto& f = sale->fulfilment();
  CHECK(f.fulfilment_id() == "n1-L1");
  CHECK(f.order_id() == "n1-L1");
  CHECK(f.status() == v1::FULFILMENT_SHIPPED);
  CHECK(f.local_kind() == v1::COUNTER_SALE);
  CHECK(f.lines(0).shipped() == 5);
  CHECK(OnHand("PLAIN", "A1") == 0);  // walk order: A1 first
  CHECK(OnHand("PLAIN", "B1") == 5);
  CHECK(OnHand("LOT", "B1", "L1") == 1);  // first expiry first out
  CHECK(Reserved("PLAIN", "n1-L1") == 0);
  auto u = Updates().back();
  CHECK(u.change() == "shipped");
  CHECK(u.local_kind() == v1::COUNTER_SALE);
  REQUIRE(u.local_lines_size() == 2);
  CHECK(u.local_lines(0).unit_price_cents() == 250);
  CHECK(u.local_lines(1).quantity() == 1);
  RequireVerified();

  // Beyond ATP: refused, nothing written.
  auto before = Snap();
  auto over = Local(v1::COUNTER_SALE, {{"PLAIN", 6, 250}});
  CHECK(over.status().code() == Code::kFailedPrecondition);
  CHECK(std::string(over.status().message()).find("only 5 of SKU 'PLAIN' available") !=
        std::string::npos);
  RequireUnchanged(before);

  auto collect = Local(v1::CLICK_AND_COLLECT, {{"PLAIN", 2, 250}});
  REQUIRE(collect.ok());
  const std::string id = collect->fulfilment().fulfilment_id();
  CHECK(id == "n1-L2");
  CHECK(collect->fulfilment().status() == v1::FULFILMENT_ACCEPTED);
  CHECK(Updates().back().change() == "accepted");
  CHECK(Updates().back().local_kind() == v1::CLICK_AND_COLLECT);
  CHECK(ledger->GetAtp("PLAIN")->available() == 3);
  CHECK(Wave().status().code() == Code::kFailedPrecondition);  // collect orders are not waved
  auto out = HandOut(id);
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  CHECK(out->fulfilment().status() == v1::FULFILMENT_SHIPPED);
  CHECK(out->fulfilment().lines(0).shipped() == 2);
  CHECK(Updates().back().change() == "shipped");
  CHECK(ledger->GetAtp("PLAIN")->on_hand() == 3);
  CHECK(Reserved("PLAIN", id) == 0);
  CHECK(HandOut(id).status().code() == Code::kFailedPrecondition);  // handed out already
  CHECK(HandOut("n1-L1").status().code() == Code::kFailedPrecondition);  // a counter sale
  RequireVerified();

  // A collect order may be picked to the counter first; hand-out takes it from staging.
  auto c2 = Local(v1::CLICK_AND_COLLECT, {{"PLAIN", 2, 250}});
  REQUIRE(c2.ok());
  const std::string id2 = c2->fulfilment().fulfilment_id();
  REQUIRE(Pick(id2, "B1", "PLAIN", 1).ok());
  REQUIRE(HandOut(id2).ok());
  CHECK(StagingUnits() == 0);
  CHECK(ledger->GetAtp("PLAIN")->on_hand() == 1);
  RequireVerified();

  // Bad local orders.
  before = Snap();
  CHECK(Local(v1::COUNTER_SALE, {}).status().code() == Code::kInvalidArgument);
  CHECK(Local(v1::COUNTER_SALE, {{"PLAIN", 0, 1}}).status().code() == Code::kInvalidArgument);
  CHECK(Local(v1::COUNTER_SALE, {{"PLAIN", -1, 1}}).status().code() == Code::kInvalidArgument);
  CHECK(Local(v1::COUNTER_SALE, {{"NOPE", 1, 1}}).status().code() == Code::kNotFound);
  CHECK(Local(v1::LOCAL_ORDER_KIND_UNSPECIFIED, {{"PLAIN", 1, 1}}).status().code() ==
        Code::kInvalidArgument);
  CHECK(Local(v1::COUNTER_SALE, {{"PLAIN", 1, 1}, {"PLAIN", 1, 1}}).status().code() ==
        Code::kFailedPrecondition);  // 2 asked, 1 available
  RequireUnchanged(before);
}

TEST_CASE_METHOD(Fixture, "the staging bin is never drawn from unless named", "[fulfilment]") {
  // A store that keeps every right local (the manual reservation below is a local commitment).
  v1::FeedEntry policy;
  policy.mutable_rights_policy()->set_site("n1");
  policy.mutable_rights_policy()->set_store_share_percent(100);
  Feed(policy);
  Receive("PLAIN", "A1", 4);
  Release("O13-1", {{1, "PLAIN", 4}});
  REQUIRE(Pick("O13-1", "A1", "PLAIN", 4).ok());
  CHECK(OnHand("PLAIN", node::kStagingBin) == 4);

  // Free stock later in the walk than... anything: still taken before staged goods.
  Receive("PLAIN", "B1", 2);
  v1::Operation reserve;
  reserve.mutable_reserve()->set_sku("PLAIN");
  reserve.mutable_reserve()->set_reference("R1");
  reserve.mutable_reserve()->set_quantity(2);
  REQUIRE(Apply(reserve).ok());
  v1::Operation consume;
  consume.mutable_consume()->set_sku("PLAIN");
  consume.mutable_consume()->set_reference("R1");
  consume.mutable_consume()->set_quantity(2);
  auto c = Apply(consume);
  REQUIRE(c.ok());
  REQUIRE(c->movements_size() == 1);
  CHECK(c->movements(0).bin() == "B1");
  CHECK(OnHand("PLAIN", node::kStagingBin) == 4);

  // Nothing but a fulfilment moves goods into or out of staging.
  Receive("PLAIN", "A2", 1);
  v1::Operation move;
  move.mutable_move()->set_sku("PLAIN");
  move.mutable_move()->set_from_bin("A2");
  move.mutable_move()->set_to_bin(node::kStagingBin);
  move.mutable_move()->set_quantity(1);
  CHECK(Apply(move).status().code() == Code::kFailedPrecondition);
  // A counter sale takes the free unit in A2, never the staged ones.
  REQUIRE(Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}}).ok());
  CHECK(Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}}).status().code() == Code::kFailedPrecondition);
  CHECK(OnHand("PLAIN", node::kStagingBin) == 4);

  // Pick lists never point at the staging bin, and it is not master data.
  Receive("PLAIN", "B1", 3);
  Release("O14-1", {{1, "PLAIN", 3}});
  auto w = Wave();
  REQUIRE(w.ok());
  for (const auto& t : w->wave().tasks()) CHECK(t.bin() != node::kStagingBin);
  REQUIRE(w->wave().tasks_size() == 1);
  CHECK(w->wave().tasks(0).bin() == "B1");
  auto bins = ledger->ListBins();
  REQUIRE(bins.ok());
  for (const auto& b : bins->bins()) CHECK(b.code() != node::kStagingBin);
  CHECK(Pick("O14-1", node::kStagingBin, "PLAIN", 1).status().code() ==
        Code::kInvalidArgument);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "waves: oldest first, service level filter, stock promised once",
                 "[fulfilment]") {
  Receive("PLAIN", "A1", 3);
  Receive("PLAIN", "B1", 10);
  Release("O20-1", {{1, "PLAIN", 2}}, "express");
  Release("O21-1", {{1, "PLAIN", 2}}, "standard");
  Release("O22-1", {{1, "PLAIN", 2}}, "standard");
  auto express = Wave(0, "express");
  REQUIRE(express.ok());
  REQUIRE(express->wave().fulfilment_ids_size() == 1);
  CHECK(express->wave().fulfilment_ids(0) == "O20-1");
  CHECK(express->wave().tasks(0).bin() == "A1");
  auto one = Wave(1);
  REQUIRE(one.ok());
  REQUIRE(one->wave().fulfilment_ids_size() == 1);
  CHECK(one->wave().fulfilment_ids(0) == "O21-1");
  // A1 holds 3, 2 are promised to W1's open task: W2 gets 1 there and 1 from B1.
  REQUIRE(one->wave().tasks_size() == 2);
  CHECK((one->wave().tasks(0).bin() == "A1" && one->wave().tasks(0).quantity() == 1));
  CHECK((one->wave().tasks(1).bin() == "B1" && one->wave().tasks(1).quantity() == 1));
  auto rest = Wave();
  REQUIRE(rest.ok());
  CHECK(rest->wave().wave_id() == "W3");
  CHECK(rest->wave().fulfilment_ids(0) == "O22-1");
  CHECK(Wave().status().code() == Code::kFailedPrecondition);
  CHECK(ledger->ListWaves()->waves_size() == 3);
  CHECK(ledger->ListWaves()->waves(0).wave_id() == "W3");  // newest first
  CHECK(ledger->GetWave("W9").status().code() == Code::kNotFound);
}

TEST_CASE_METHOD(Fixture, "a replayed request_id returns the first result", "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Release("O15-1", {{1, "PLAIN", 3}});
  auto first = Pick("O15-1", "A1", "PLAIN", 1, "", {}, "scan-1");
  REQUIRE(first.ok());
  CHECK_FALSE(first->replayed());
  const uint64_t moves = ledger->LastSeq(), events = ledger->LastEventSeq();
  auto again = Pick("O15-1", "A1", "PLAIN", 1, "", {}, "scan-1");
  REQUIRE(again.ok());
  CHECK(again->replayed());
  CHECK(again->fulfilment().SerializeAsString() == first->fulfilment().SerializeAsString());
  CHECK(again->movements_size() == 1);
  CHECK(ledger->LastSeq() == moves);
  CHECK(ledger->LastEventSeq() == events);
  CHECK(Get("O15-1").lines(0).picked() == 1);
  CHECK(Pick("O15-1", "A1", "PLAIN", 2, "", {}, "scan-1").status().code() ==
        Code::kAlreadyExists);
  // Also for operations that write no movement, and for local sales.
  v1::Operation wave;
  wave.mutable_wave()->set_request_id("wave-1");
  auto w1 = Apply(wave);
  REQUIRE(w1.ok());
  auto w2 = Apply(wave);
  REQUIRE(w2.ok());
  CHECK(w2->replayed());
  CHECK(w2->wave().wave_id() == "W1");
  auto s1 = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 100}}, "till-7");
  auto s2 = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 100}}, "till-7");
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  CHECK(s2->replayed());
  CHECK(s2->fulfilment().fulfilment_id() == s1->fulfilment().fulfilment_id());
  CHECK(ledger->GetAtp("PLAIN")->on_hand() == 4);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "bad requests are refused and change nothing", "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Receive("LOT", "A2", 5, "L1", "2031-01-01");
  Release("O16-1", {{1, "PLAIN", 3}, {2, "LOT", 2}});
  auto before = Snap();
  auto code = [](const absl::StatusOr<v1::OperationResult>& r) { return r.status().code(); };

  CHECK(code(Ship("O16-1")) == Code::kFailedPrecondition);         // ship before pick
  CHECK(code(Pack("O16-1")) == Code::kFailedPrecondition);         // pack before picked
  CHECK(code(Pick("O16-1", "A1", "WHAT", 1)) == Code::kNotFound);  // unknown item
  CHECK(code(Pick("O16-1", "A1", "OTHER", 1)) == Code::kFailedPrecondition);  // not on it
  CHECK(code(Pick("O16-1", "A1", "PLAIN", 4)) == Code::kFailedPrecondition);  // more than open
  CHECK(code(Pick("O16-1", "B1", "PLAIN", 1)) == Code::kFailedPrecondition);  // wrong bin
  CHECK(code(Pick("O16-1", "Z9", "PLAIN", 1)) == Code::kNotFound);            // unknown bin
  CHECK(code(Pick("O16-1", "A2", "LOT", 1)) == Code::kInvalidArgument);       // missing lot
  CHECK(code(Pick("O16-1", "A2", "LOT", 1, "L9")) == Code::kNotFound);        // unknown lot
  CHECK(code(Pick("O16-1", "A1", "PLAIN", 0)) == Code::kInvalidArgument);     // zero quantity
  CHECK(code(Pick("O16-1", "", "PLAIN", 1)) == Code::kInvalidArgument);       // no bin
  CHECK(code(Pick("O16-1", "A1", "", 1)) == Code::kInvalidArgument);          // no item
  CHECK(code(Pick("NOPE-1", "A1", "PLAIN", 1)) == Code::kNotFound);
  CHECK(code(Pick("", "A1", "PLAIN", 1)) == Code::kInvalidArgument);
  CHECK(code(HandOut("O16-1")) == Code::kFailedPrecondition);  // not click-and-collect
  RequireUnchanged(before);

  REQUIRE(Pick("O16-1", "A1", "PLAIN", 3).ok());
  REQUIRE(Pick("O16-1", "A2", "LOT", 2, "L1").ok());
  before = Snap();
  CHECK(code(Pack("O16-1", 0)) == Code::kInvalidArgument);   // weight 0
  CHECK(code(Pack("O16-1", -5)) == Code::kInvalidArgument);  // weight < 0
  CHECK(code(Pack("O16-1", 100, 0)) == Code::kInvalidArgument);  // no length
  {
    v1::Operation op;  // items that do not add up to the picked quantities
    op.mutable_pack()->set_fulfilment_id("O16-1");
    auto* p = op.mutable_pack()->add_packages();
    p->set_weight_g(10);
    p->set_length_mm(1);
    p->set_width_mm(1);
    p->set_height_mm(1);
    auto* item = p->add_items();
    item->set_sku("PLAIN");
    item->set_quantity(2);
    CHECK(code(Apply(op)) == Code::kInvalidArgument);
    item->set_quantity(3);
    CHECK(code(Apply(op)) == Code::kInvalidArgument);  // LOT missing
    op.mutable_pack()->clear_packages();
    CHECK(code(Apply(op)) == Code::kInvalidArgument);  // no package
  }
  CHECK(code(Ship("O16-1")) == Code::kFailedPrecondition);  // not packed yet
  CHECK(code(Pick("O16-1", "A1", "PLAIN", 1)) == Code::kFailedPrecondition);  // all picked
  CHECK(code(Wave()) == Code::kFailedPrecondition);
  RequireUnchanged(before);

  REQUIRE(Pack("O16-1").ok());
  before = Snap();
  CHECK(code(Pack("O16-1")) == Code::kFailedPrecondition);  // packed already
  CHECK(code(Short("O16-1", 1, 0, "damaged")) == Code::kFailedPrecondition);
  CHECK(code(Ship("O16-1", "", "T")) == Code::kInvalidArgument);
  CHECK(code(Ship("O16-1", "DHL", "")) == Code::kInvalidArgument);
  RequireUnchanged(before);
  REQUIRE(Ship("O16-1").ok());
  CHECK(code(Ship("O16-1")) == Code::kFailedPrecondition);  // shipped already
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "fulfilment operations share group commit with stock operations",
                 "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Release("O17-1", {{1, "PLAIN", 2}});
  Release("O18-1", {{1, "PLAIN", 2}});
  v1::Operation good1, bad, good2;
  good1.mutable_pick()->set_fulfilment_id("O17-1");
  good1.mutable_pick()->set_bin("A1");
  good1.mutable_pick()->set_item("PLAIN");
  good1.mutable_pick()->set_quantity(2);
  bad = good1;
  bad.mutable_pick()->set_fulfilment_id("O18-1");
  bad.mutable_pick()->set_quantity(3);  // more than open
  good2 = good1;
  good2.mutable_pick()->set_fulfilment_id("O18-1");
  std::vector<node::WriteItem> items = {{&ctx, &good1}, {&ctx, &bad}, {&ctx, &good2}};
  auto results = ledger->ApplyBatch(items);
  REQUIRE(results.size() == 3);
  CHECK(results[0].ok());
  CHECK(results[1].status().code() == Code::kFailedPrecondition);
  CHECK(results[2].ok());
  CHECK(Get("O17-1").status() == v1::FULFILMENT_PICKED);
  CHECK(Get("O18-1").status() == v1::FULFILMENT_PICKED);
  // Gap-free event sequence across movements and updates.
  auto events = ledger->ReadOutbox(0, 1000);
  REQUIRE(events.ok());
  for (size_t i = 0; i < events->size(); ++i) CHECK((*events)[i].seq() == i + 1);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "state and clock survive a reopen", "[fulfilment]") {
  Receive("PLAIN", "A1", 5);
  Release("O19-1", {{1, "PLAIN", 2}});
  const uint64_t hlc = Updates().back().hlc();
  clock.Set(clock.NowMicros() - 3'600'000'000);  // the wall clock steps back an hour
  Reopen();
  CHECK(Get("O19-1").status() == v1::FULFILMENT_ACCEPTED);
  REQUIRE(Pick("O19-1", "A1", "PLAIN", 2).ok());
  CHECK(Updates().back().hlc() > hlc);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "plain stock operations cannot take what orders own", "[fulfilment]") {
  Receive("PLAIN", "A1", 4);
  Release("O23-1", {{1, "PLAIN", 3}});
  REQUIRE(Pick("O23-1", "A1", "PLAIN", 2).ok());
  const Snapshot before = Snap();
  auto refused = [&](v1::Operation op) {
    auto r = Apply(op);
    INFO(r.status().ToString());
    CHECK(r.status().code() == Code::kFailedPrecondition);
  };
  v1::Operation op;
  op.mutable_move()->set_sku("PLAIN");  // staged goods moved away by hand
  op.mutable_move()->set_from_bin(node::kStagingBin);
  op.mutable_move()->set_to_bin("B1");
  op.mutable_move()->set_quantity(2);
  refused(op);
  op.Clear();
  op.mutable_scrap()->set_sku("PLAIN");
  op.mutable_scrap()->set_bin(node::kStagingBin);
  op.mutable_scrap()->set_quantity(1);
  op.mutable_scrap()->set_reason("damaged");
  refused(op);
  op.Clear();
  op.mutable_adjust()->set_sku("PLAIN");
  op.mutable_adjust()->set_bin(node::kStagingBin);
  op.mutable_adjust()->set_quantity(-1);
  op.mutable_adjust()->set_reason("lost");
  refused(op);
  op.Clear();
  op.mutable_receipt()->set_sku("PLAIN");
  op.mutable_receipt()->set_bin(node::kStagingBin);
  op.mutable_receipt()->set_quantity(1);
  refused(op);
  op.Clear();
  op.mutable_release()->set_sku("PLAIN");  // the order's reservation released by hand
  op.mutable_release()->set_reference("O23-1");
  refused(op);
  op.Clear();
  op.mutable_consume()->set_sku("PLAIN");
  op.mutable_consume()->set_reference("O23-1");
  op.mutable_consume()->set_quantity(1);
  refused(op);
  op.Clear();
  op.mutable_reserve()->set_sku("PLAIN");
  op.mutable_reserve()->set_reference("O23-1");
  op.mutable_reserve()->set_quantity(1);
  refused(op);
  RequireUnchanged(before);

  // The order's own cancel puts the staged goods back.
  Cancel("O23-1", "customer");
  CHECK(Get("O23-1").status() == v1::FULFILMENT_CANCELLED);
  CHECK(Reserved("PLAIN", "O23-1") == 0);
  CHECK(OnHand("PLAIN", node::kStagingBin) == 0);
  CHECK(OnHand("PLAIN", "A1") == 4);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "verify checks that fulfilment lines account for reservations",
                 "[fulfilment]") {
  Receive("PLAIN", "A1", 4);
  Release("O24-1", {{1, "PLAIN", 3}});
  RequireVerified();
  {
    SQLite::Database db(dir + "/node.db", SQLite::OPEN_READWRITE);
    db.exec("UPDATE fulfilment_lines SET reserved = 2 WHERE fulfilment_id = 'O24-1'");
  }
  auto v = ledger->Verify();
  REQUIRE(v.ok());
  CHECK_FALSE(v->ok());
  REQUIRE(v->differences_size() == 1);
  CHECK(v->differences(0).what() == "fulfilment_reserved");
  CHECK(v->differences(0).key() == "PLAIN/O24-1");
  CHECK(v->differences(0).stored() == 2);
  CHECK(v->differences(0).recomputed() == 3);
}

TEST_CASE_METHOD(Fixture, "a restored database never reuses a local order id", "[fulfilment]") {
  Receive("PLAIN", "A1", 10);
  auto first = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}});
  REQUIRE(first.ok());
  CHECK(first->fulfilment().fulfilment_id() == "n1-L1");
  ledger.reset();
  std::filesystem::copy_file(dir + "/node.db", dir + "/backup.db");
  Reopen();
  auto lost = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}});  // lost by the restore below
  REQUIRE(lost.ok());
  CHECK(lost->fulfilment().fulfilment_id() == "n1-L2");
  ledger.reset();
  REQUIRE(Ledger::RestoreFromBackup(dir + "/backup.db", dir + "/node.db").ok());
  clock.Advance(5000);
  Reopen();
  auto again = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}});
  REQUIRE(again.ok());
  const std::string id = again->fulfilment().fulfilment_id();
  INFO(id);
  CHECK(id != "n1-L2");
  CHECK(id.rfind("n1-", 0) == 0);
  // The prefix is kept across restarts of the restored database.
  Reopen();
  auto next = Local(v1::COUNTER_SALE, {{"PLAIN", 1, 0}});
  REQUIRE(next.ok());
  CHECK(next->fulfilment().fulfilment_id().substr(0, id.size() - 1) == id.substr(0, id.size() - 1));
  RequireVerified();
}
