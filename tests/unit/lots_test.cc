// Lots with expiry at the node (node/ledger.h): FEFO draws and wave allocation skip expired lots,
// explicit draws of an expired lot and receipts of one are refused, expire_lots writes expired
// stock off (idempotently), and the lot history. The ledger's manual clock crosses the expiry.
#include <catch2/catch.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "common/stock_rules.h"
#include "node/fulfilment.h"
#include "node/ledger.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;

namespace {

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "LOT,5901234123457,Yoghurt,ea,lot,true,false,0\n"
    "PLAIN,4006381333931,Plain widget,ea,none,false,false,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nA2,A,2\nQ1,Q,9\n";

constexpr int64_t k20300105 = 1893844800000000;  // 2030-01-05 12:00 UTC
constexpr int64_t k20300111 = 1894363200000000;  // 2030-01-11 12:00 UTC

using Code = absl::StatusCode;

struct Fixture : testing::LedgerFixture {
  uint64_t feed_seq = 0;

  // L1 (expires 2030-01-10) in A1, L2 (2030-06-01) in A2, 5 each, received on 2030-01-05.
  Fixture() : LedgerFixture("depot-lots-", kSkus, kBins, "clerk") {
    clock.Set(k20300105);
    for (auto [bin, lot, expiry] : {std::tuple{"A1", "L1", "2030-01-10"},
                                    std::tuple{"A2", "L2", "2030-06-01"}}) {
      auto r = Receive("LOT", bin, 5, lot, expiry);
      INFO(r.status().ToString());
      REQUIRE(r.ok());
    }
  }
  void ExpireL1() { clock.Set(k20300111); }

  absl::StatusOr<v1::OperationResult> Apply(const v1::Operation& op) {
    return ledger->Apply(ctx, op);
  }
  absl::StatusOr<v1::OperationResult> Reserve(const std::string& ref, int64_t q) {
    v1::Operation op;
    op.mutable_reserve()->set_sku("LOT");
    op.mutable_reserve()->set_reference(ref);
    op.mutable_reserve()->set_quantity(q);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Consume(const std::string& ref, int64_t q,
                                              const std::string& lot = "",
                                              const std::string& bin = "") {
    v1::Operation op;
    auto* c = op.mutable_consume();
    c->set_sku("LOT");
    c->set_reference(ref);
    c->set_quantity(q);
    c->set_lot(lot);
    c->set_bin(bin);
    return Apply(op);
  }
  absl::StatusOr<v1::OperationResult> Expire(const std::string& request_id = "") {
    v1::Operation op;
    op.mutable_expire_lots()->set_request_id(request_id);
    return Apply(op);
  }
  int64_t OnHand(const std::string& bin, const std::string& lot) {
    auto stock = ledger->GetStock("LOT", "");
    REQUIRE(stock.ok());
    for (const auto& b : stock->balances()) {
      if (b.bin() == bin && b.lot() == lot) return b.on_hand();
    }
    return 0;
  }
  void Release(const std::string& id, int64_t q) {
    v1::FeedEntry e;
    e.set_seq(++feed_seq);
    auto* r = e.mutable_release();
    r->set_fulfilment_id(id);
    r->set_order_id(id.substr(0, id.rfind('-')));
    r->set_channel("web");
    r->set_service_level("standard");
    r->mutable_ship_to()->set_name("Ada");
    auto* l = r->add_lines();
    l->set_line_no(1);
    l->set_sku("LOT");
    l->set_quantity(q);
    auto mark = ledger->ApplyFeed({e});
    INFO(mark.status().ToString());
    REQUIRE(mark.ok());
  }
};

}  // namespace

TEST_CASE("UTC date of a clock and lot expiry", "[lots]") {
  CHECK(UtcDate(0) == "1970-01-01");
  CHECK(UtcDate(k20300105) == "2030-01-05");
  CHECK(UtcDate(k20300111) == "2030-01-11");
  CHECK(UtcDate(951782400000000) == "2000-02-29");
  CHECK(UtcDate(-1) == "1969-12-31");
  CHECK(LotExpired("2030-01-10", "2030-01-11"));
  CHECK_FALSE(LotExpired("2030-01-11", "2030-01-11"));  // expires at the end of its day
  CHECK_FALSE(LotExpired("", "2030-01-11"));            // no expiry never expires
  CHECK(CheckAdjustment("expired", -1).ok());
  CHECK(CheckAdjustment("expired", 1).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE_METHOD(Fixture, "FEFO consume skips an expired lot, a named one is refused", "[lots]") {
  REQUIRE(Reserve("R1", 3).ok());
  REQUIRE(Reserve("R2", 2).ok());
  // Before the expiry, FEFO takes L1 first.
  {
    auto c = Consume("R2", 1);
    REQUIRE(c.ok());
    REQUIRE(c->movements_size() == 1);
    CHECK(c->movements(0).lot() == "L1");
  }
  ExpireL1();
  auto c = Consume("R1", 3);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  REQUIRE(c->movements_size() == 1);
  CHECK(c->movements(0).lot() == "L2");
  CHECK(c->movements(0).bin() == "A2");
  CHECK(OnHand("A1", "L1") == 4);

  const uint64_t seq = ledger->LastSeq();
  auto named = Consume("R2", 1, "L1");
  CHECK(named.status().code() == Code::kFailedPrecondition);
  CHECK(named.status().message() == "lot 'L1' of SKU 'LOT' expired on 2030-01-10");
  auto in_bin = Consume("R2", 1, "L1", "A1");
  CHECK(in_bin.status().code() == Code::kFailedPrecondition);
  // A named bin holding only expired stock has nothing to give.
  CHECK(Consume("R2", 1, "", "A1").status().code() == Code::kFailedPrecondition);
  CHECK(ledger->LastSeq() == seq);
  CHECK(OnHand("A1", "L1") == 4);

  // Moving expired stock to quarantine and scrapping it stay allowed.
  v1::Operation mv;
  mv.mutable_move()->set_sku("LOT");
  mv.mutable_move()->set_from_bin("A1");
  mv.mutable_move()->set_to_bin("Q1");
  mv.mutable_move()->set_lot("L1");
  mv.mutable_move()->set_quantity(2);
  REQUIRE(Apply(mv).ok());
  v1::Operation scrap;
  scrap.mutable_scrap()->set_sku("LOT");
  scrap.mutable_scrap()->set_bin("Q1");
  scrap.mutable_scrap()->set_lot("L1");
  scrap.mutable_scrap()->set_quantity(1);
  REQUIRE(Apply(scrap).ok());
  CHECK(OnHand("Q1", "L1") == 1);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "receipts of an expired lot are refused", "[lots]") {
  ExpireL1();
  const uint64_t seq = ledger->LastSeq();
  auto known = Receive("LOT", "A1", 1, "L1");
  CHECK(known.status().code() == Code::kFailedPrecondition);
  CHECK(known.status().message() == "lot 'L1' expired on 2030-01-10 (today is 2030-01-11)");
  auto fresh = Receive("LOT", "A1", 1, "L0", "2029-12-31");
  CHECK(fresh.status().code() == Code::kFailedPrecondition);
  CHECK(ledger->LastSeq() == seq);
  CHECK(ledger->GetLot("LOT", "L0").status().code() == Code::kNotFound);  // not registered
  CHECK(Receive("LOT", "A1", 1, "L3", "2030-01-11").ok());  // expires today: still good
}

TEST_CASE_METHOD(Fixture, "wave allocation and picks skip expired lots", "[lots]") {
  ExpireL1();
  Release("O1-1", 4);
  v1::Operation wave;
  wave.mutable_wave();
  auto w = Apply(wave);
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  REQUIRE(w->wave().tasks_size() == 1);
  CHECK(w->wave().tasks(0).lot() == "L2");
  CHECK(w->wave().tasks(0).bin() == "A2");
  CHECK(w->wave().tasks(0).quantity() == 4);

  const uint64_t seq = ledger->LastSeq();
  v1::Operation pick;
  auto* p = pick.mutable_pick();
  p->set_fulfilment_id("O1-1");
  p->set_bin("A1");
  p->set_item("LOT");
  p->set_lot("L1");
  p->set_quantity(1);
  auto refused = Apply(pick);
  CHECK(refused.status().code() == Code::kFailedPrecondition);
  CHECK(refused.status().message() == "lot 'L1' of SKU 'LOT' expired on 2030-01-10");
  CHECK(ledger->LastSeq() == seq);
  p->set_bin("A2");
  p->set_lot("L2");
  p->set_quantity(4);
  REQUIRE(Apply(pick).ok());
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "expire_lots writes expired stock off once", "[lots]") {
  // Nothing expired yet: nothing written.
  {
    const uint64_t seq = ledger->LastSeq();
    auto r = Expire();
    REQUIRE(r.ok());
    CHECK(r->movements_size() == 0);
    CHECK(r->expired().balances() == 0);
    CHECK(r->expired().today() == "2030-01-05");
    CHECK(ledger->LastSeq() == seq);
  }
  // 8 of the 10 units are reserved: the write-off still posts, the ATP goes short.
  REQUIRE(Reserve("R1", 8).ok());
  ExpireL1();
  auto r = Expire("exp-1");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->movements_size() == 1);
  const auto& m = r->movements(0);
  CHECK(m.type() == v1::ADJUSTMENT);
  CHECK(m.reason() == "expired");
  CHECK(m.lot() == "L1");
  CHECK(m.bin() == "A1");
  CHECK(m.quantity() == -5);
  CHECK(m.expiry() == "2030-01-10");
  CHECK(r->expired().balances() == 1);
  CHECK(r->expired().units() == 5);
  CHECK(OnHand("A1", "L1") == 0);
  CHECK(ledger->GetAtp("LOT")->on_hand() == 5);
  CHECK(ledger->GetAtp("LOT")->available() == -3);
  RequireVerified();

  // Idempotent: the same request replays, a new one finds nothing left.
  const uint64_t seq = ledger->LastSeq();
  auto again = Expire("exp-1");
  REQUIRE(again.ok());
  CHECK(again->replayed());
  auto next = Expire();
  REQUIRE(next.ok());
  CHECK(next->movements_size() == 0);
  CHECK(next->expired().units() == 0);
  CHECK(ledger->LastSeq() == seq);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "lot history", "[lots]") {
  REQUIRE(Reserve("R1", 2).ok());
  REQUIRE(Consume("R1", 2).ok());  // from L1 (first expiry)
  {
    auto lot = ledger->GetLot("LOT", "L1");
    REQUIRE(lot.ok());
    CHECK(lot->expiry() == "2030-01-10");
    CHECK_FALSE(lot->expired());
    CHECK(lot->on_hand() == 3);
    REQUIRE(lot->balances_size() == 1);
    CHECK(lot->balances(0).bin() == "A1");
  }
  ExpireL1();
  REQUIRE(Expire().ok());
  auto lot = ledger->GetLot("LOT", "L1");
  REQUIRE(lot.ok());
  CHECK(lot->expired());
  CHECK(lot->on_hand() == 0);
  CHECK(lot->balances_size() == 0);
  REQUIRE(lot->movements_size() == 3);
  CHECK(lot->movements(0).type() == v1::RECEIPT);
  CHECK(lot->movements(1).type() == v1::CONSUME);
  CHECK(lot->movements(2).type() == v1::ADJUSTMENT);
  CHECK(lot->movements(2).reason() == "expired");
  for (const auto& m : lot->movements()) CHECK(m.lot() == "L1");
  CHECK(lot->next_after_seq() == 0);

  auto page = ledger->GetLot("LOT", "L1", 0, 2);
  REQUIRE(page.ok());
  REQUIRE(page->movements_size() == 2);
  REQUIRE(page->next_after_seq() == page->movements(1).seq());
  auto rest = ledger->GetLot("LOT", "L1", page->next_after_seq(), 2);
  REQUIRE(rest.ok());
  REQUIRE(rest->movements_size() == 1);
  CHECK(rest->movements(0).reason() == "expired");

  CHECK(ledger->GetLot("LOT", "NOPE").status().code() == Code::kNotFound);
  CHECK(ledger->GetLot("NOPE", "L1").status().code() == Code::kNotFound);
  CHECK(ledger->GetLot("LOT", "").status().code() == Code::kInvalidArgument);
}
