// Ledger rules, against a real SQLite file in a fresh temporary directory.
#include <SQLiteCpp/Database.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <thread>

#include "common/clock.h"
#include "node/group_commit.h"
#include "node/ledger.h"
#include "tests/unit/ledger_fixture.h"

using namespace depot;
using node::Ledger;

namespace {

constexpr const char* kSkus =
    "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n"
    "PLAIN,4006381333931,Plain widget,ea,none,false,false,0\n"
    "SAFE,,Widget with safety stock,ea,none,false,false,2\n"
    "LOT,,Yoghurt,ea,lot,true,false,0\n"
    "SER,,Phone,ea,serial,false,false,0\n"
    "NEG,,Cable by the metre,m,none,false,true,0\n";
constexpr const char* kBins = "code,zone,walk_order\nA1,A,1\nA2,A,2\nB1,B,3\n";

struct Fixture : testing::LedgerFixture {

  Fixture() : LedgerFixture("depot-ledger-", kSkus, kBins, "alice") {}
  absl::StatusOr<v1::OperationResult> Reserve(const std::string& sku, const std::string& ref,
                                              int64_t qty) {
    v1::Operation op;
    op.mutable_reserve()->set_sku(sku);
    op.mutable_reserve()->set_reference(ref);
    op.mutable_reserve()->set_quantity(qty);
    return ledger->Apply(ctx, op);
  }
  int64_t OnHand(const std::string& sku) { return ledger->GetAtp(sku)->on_hand(); }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "receipt, move, scrap and adjustments update balances", "[ledger]") {
  auto r = Receive("PLAIN", "A1", 10);
  REQUIRE(r.ok());
  CHECK(r->movements_size() == 1);
  CHECK(r->movements(0).seq() == 1);
  CHECK(r->movements(0).operator_id() == "alice");
  CHECK(r->atp().on_hand() == 10);

  v1::Operation mv;
  mv.mutable_move()->set_sku("PLAIN");
  mv.mutable_move()->set_from_bin("A1");
  mv.mutable_move()->set_to_bin("B1");
  mv.mutable_move()->set_quantity(4);
  REQUIRE(ledger->Apply(ctx, mv).ok());

  v1::Operation scrap;
  scrap.mutable_scrap()->set_sku("PLAIN");
  scrap.mutable_scrap()->set_bin("B1");
  scrap.mutable_scrap()->set_quantity(1);
  REQUIRE(ledger->Apply(ctx, scrap).ok());

  v1::Operation adj;
  adj.mutable_adjust()->set_sku("PLAIN");
  adj.mutable_adjust()->set_bin("A1");
  adj.mutable_adjust()->set_quantity(-2);
  adj.mutable_adjust()->set_reason("damaged");
  REQUIRE(ledger->Apply(ctx, adj).ok());
  adj.mutable_adjust()->set_quantity(5);
  adj.mutable_adjust()->set_reason("found");
  REQUIRE(ledger->Apply(ctx, adj).ok());

  auto stock = ledger->GetStock("PLAIN", "");
  REQUIRE(stock.ok());
  REQUIRE(stock->balances_size() == 2);
  CHECK(stock->balances(0).bin() == "A1");
  CHECK(stock->balances(0).on_hand() == 9);  // 10 - 4 - 2 + 5
  CHECK(stock->balances(1).bin() == "B1");
  CHECK(stock->balances(1).on_hand() == 3);  // 4 - 1
  CHECK(stock->atp().on_hand() == 12);
  CHECK(ledger->LastSeq() == 5);
  CHECK(ledger->OutboxDepth() == 5);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "balances never go negative unless the SKU allows it", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 3).ok());
  v1::Operation scrap;
  scrap.mutable_scrap()->set_sku("PLAIN");
  scrap.mutable_scrap()->set_bin("A1");
  scrap.mutable_scrap()->set_quantity(4);
  auto r = ledger->Apply(ctx, scrap);
  REQUIRE(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(r.status().message()).find("has 3") != std::string::npos);
  CHECK(OnHand("PLAIN") == 3);
  CHECK(ledger->LastSeq() == 1);

  scrap.mutable_scrap()->set_sku("NEG");
  REQUIRE(ledger->Apply(ctx, scrap).ok());
  CHECK(OnHand("NEG") == -4);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "bad requests are refused and write nothing", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 3).ok());
  CHECK(Receive("NOPE", "A1", 1).status().code() == absl::StatusCode::kNotFound);
  CHECK(Receive("PLAIN", "Z9", 1).status().code() == absl::StatusCode::kNotFound);
  CHECK(Receive("PLAIN", "A1", 0).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Receive("PLAIN", "A1", -1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Receive("PLAIN", "A1", 1, "L1").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Receive("LOT", "A1", 1).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Receive("LOT", "A1", 1, "L1").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Receive("LOT", "A1", 1, "L1", "2025-02-30").status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Receive("SER", "A1", 2, "", "", {"S1"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Receive("SER", "A1", 2, "", "", {"S1", "S1"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(Receive("PLAIN", "A1", 1, "", "", {"S1"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  v1::Operation empty;
  CHECK(ledger->Apply(ctx, empty).status().code() == absl::StatusCode::kInvalidArgument);
  RequestContext nobody{"", ""};
  v1::Operation op;
  op.mutable_receipt()->set_sku("PLAIN");
  op.mutable_receipt()->set_bin("A1");
  op.mutable_receipt()->set_quantity(1);
  CHECK_FALSE(ledger->Apply(nobody, op).ok());
  CHECK(ledger->LastSeq() == 1);
  CHECK(ledger->OutboxDepth() == 1);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "movements are immutable at the storage level", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 3).ok());
  SQLite::Database db(dir + "/node.db", SQLite::OPEN_READWRITE);
  CHECK_THROWS_WITH(db.exec("UPDATE movements SET quantity = 99"),
                    Catch::Contains("immutable"));
  CHECK_THROWS_WITH(db.exec("DELETE FROM movements"), Catch::Contains("immutable"));
}

TEST_CASE_METHOD(Fixture, "reservations: ATP = on hand - reserved - safety stock", "[ledger]") {
  REQUIRE(Receive("SAFE", "A1", 10).ok());
  auto atp = ledger->GetAtp("SAFE");
  REQUIRE(atp.ok());
  CHECK(atp->available() == 8);

  REQUIRE(Reserve("SAFE", "order-1", 5).ok());
  auto over = Reserve("SAFE", "order-2", 4);
  REQUIRE(over.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(over.status().message())
            .find("only 3 of SKU 'SAFE' available for local sale") != std::string::npos);
  REQUIRE(Reserve("SAFE", "order-2", 3).ok());
  CHECK(ledger->GetAtp("SAFE")->available() == 0);
  CHECK(Reserve("SAFE", "order-3", 1).status().code() == absl::StatusCode::kFailedPrecondition);

  // Release part, then all.
  v1::Operation rel;
  rel.mutable_release()->set_sku("SAFE");
  rel.mutable_release()->set_reference("order-1");
  rel.mutable_release()->set_quantity(2);
  REQUIRE(ledger->Apply(ctx, rel).ok());
  CHECK(ledger->GetAtp("SAFE")->reserved() == 6);
  rel.mutable_release()->set_quantity(9);
  CHECK(ledger->Apply(ctx, rel).status().code() == absl::StatusCode::kFailedPrecondition);
  rel.mutable_release()->set_quantity(0);  // everything still open
  REQUIRE(ledger->Apply(ctx, rel).ok());
  CHECK(ledger->GetAtp("SAFE")->reserved() == 3);
  CHECK(ledger->Apply(ctx, rel).status().code() == absl::StatusCode::kNotFound);

  // Consume takes the goods out of stock and the reservation down together.
  v1::Operation con;
  con.mutable_consume()->set_sku("SAFE");
  con.mutable_consume()->set_reference("order-2");
  con.mutable_consume()->set_quantity(3);
  auto c = ledger->Apply(ctx, con);
  REQUIRE(c.ok());
  CHECK(c->atp().on_hand() == 7);
  CHECK(c->atp().reserved() == 0);
  CHECK(c->atp().available() == 5);
  CHECK(ledger->ListReservations("SAFE")->reservations_size() == 0);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "consume draws first-expiry-first-out across lots and bins", "[ledger]") {
  REQUIRE(Receive("LOT", "A1", 5, "LATE", "2091-01-01").ok());
  REQUIRE(Receive("LOT", "B1", 3, "EARLY", "2090-01-01").ok());
  REQUIRE(Receive("LOT", "A2", 2, "MID", "2090-06-01").ok());
  // A lot keeps one expiry.
  CHECK(Receive("LOT", "A1", 1, "EARLY", "2092-01-01").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  REQUIRE(Receive("LOT", "A1", 1, "EARLY").ok());  // expiry known from the lot
  REQUIRE(Reserve("LOT", "o1", 6).ok());
  v1::Operation con;
  con.mutable_consume()->set_sku("LOT");
  con.mutable_consume()->set_reference("o1");
  con.mutable_consume()->set_quantity(6);
  auto c = ledger->Apply(ctx, con);
  REQUIRE(c.ok());
  REQUIRE(c->movements_size() == 3);
  // EARLY in A1 (walk 1) and B1 (walk 3), then MID.
  CHECK(c->movements(0).lot() == "EARLY");
  CHECK(c->movements(0).expiry() == "2090-01-01");  // every row carries its lot's expiry
  CHECK(c->movements(0).bin() == "A1");
  CHECK(c->movements(0).quantity() == 1);
  CHECK(c->movements(1).lot() == "EARLY");
  CHECK(c->movements(1).bin() == "B1");
  CHECK(c->movements(1).quantity() == 3);
  CHECK(c->movements(2).lot() == "MID");
  CHECK(c->movements(2).quantity() == 2);
  CHECK(c->movements(1).op_seq() == c->movements(0).seq());
  CHECK(c->movements(2).op_seq() == c->movements(0).seq());
  CHECK(OnHand("LOT") == 5);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "serials enter, move and leave with their stock", "[ledger]") {
  REQUIRE(Receive("SER", "A1", 2, "", "", {"S1", "S2"}).ok());
  CHECK(Receive("SER", "A2", 1, "", "", {"S1"}).status().code() ==
        absl::StatusCode::kFailedPrecondition);  // already in stock
  v1::Operation mv;
  mv.mutable_move()->set_sku("SER");
  mv.mutable_move()->set_from_bin("A2");
  mv.mutable_move()->set_to_bin("B1");
  mv.mutable_move()->set_quantity(1);
  mv.mutable_move()->add_serials("S1");
  CHECK(ledger->Apply(ctx, mv).status().code() == absl::StatusCode::kFailedPrecondition);
  mv.mutable_move()->set_from_bin("A1");
  REQUIRE(ledger->Apply(ctx, mv).ok());
  REQUIRE(Reserve("SER", "o1", 1).ok());
  v1::Operation con;
  con.mutable_consume()->set_sku("SER");
  con.mutable_consume()->set_reference("o1");
  con.mutable_consume()->set_quantity(1);
  con.mutable_consume()->add_serials("S9");
  CHECK(ledger->Apply(ctx, con).status().code() == absl::StatusCode::kFailedPrecondition);
  con.mutable_consume()->set_serials(0, "S1");
  auto c = ledger->Apply(ctx, con);
  REQUIRE(c.ok());
  CHECK(c->movements(0).bin() == "B1");
  // S1 left; it may be received again (a return), S2 may not.
  CHECK(Receive("SER", "A1", 1, "", "", {"S1"}).ok());
  CHECK_FALSE(Receive("SER", "A1", 1, "", "", {"S2"}).ok());
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "request_id makes a write idempotent", "[ledger]") {
  v1::Operation op;
  op.mutable_receipt()->set_sku("PLAIN");
  op.mutable_receipt()->set_bin("A1");
  op.mutable_receipt()->set_quantity(5);
  op.mutable_receipt()->set_request_id("scan-42");
  auto first = ledger->Apply(ctx, op);
  REQUIRE(first.ok());
  CHECK_FALSE(first->replayed());
  auto again = ledger->Apply(ctx, op);
  REQUIRE(again.ok());
  CHECK(again->replayed());
  CHECK(again->movements(0).seq() == first->movements(0).seq());
  CHECK(OnHand("PLAIN") == 5);
  op.mutable_receipt()->set_quantity(6);
  CHECK(ledger->Apply(ctx, op).status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(ledger->LastSeq() == 1);
}

TEST_CASE_METHOD(Fixture, "a batch commits good operations and isolates bad ones", "[ledger]") {
  std::vector<v1::Operation> ops(4);
  ops[0].mutable_receipt()->set_sku("PLAIN");
  ops[0].mutable_receipt()->set_bin("A1");
  ops[0].mutable_receipt()->set_quantity(2);
  ops[1].mutable_reserve()->set_sku("PLAIN");
  ops[1].mutable_reserve()->set_reference("r");
  ops[1].mutable_reserve()->set_quantity(3);  // only 2 available: refused
  ops[2].mutable_reserve()->set_sku("PLAIN");
  ops[2].mutable_reserve()->set_reference("r");
  ops[2].mutable_reserve()->set_quantity(2);
  ops[3].mutable_receipt()->set_sku("PLAIN");
  ops[3].mutable_receipt()->set_bin("nowhere");
  ops[3].mutable_receipt()->set_quantity(1);
  std::vector<node::WriteItem> items;
  for (auto& op : ops) items.push_back({&ctx, &op});
  auto results = ledger->ApplyBatch(items);
  REQUIRE(results.size() == 4);
  CHECK(results[0].ok());
  CHECK(results[1].status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(results[2].ok());
  CHECK(results[3].status().code() == absl::StatusCode::kNotFound);
  CHECK(results[2]->movements(0).seq() == 2);  // gap-free despite the failure between
  CHECK(ledger->LastSeq() == 2);
  CHECK(ledger->OutboxDepth() == 2);
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "group commit: concurrent reservations never exceed ATP", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 50).ok());
  node::GroupCommitter committer(ledger.get());
  std::atomic<int> granted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<void>> waits;
      for (int i = 0; i < 20; ++i) {
        auto done = std::make_shared<std::promise<void>>();
        waits.push_back(done->get_future());
        v1::Operation op;
        op.mutable_reserve()->set_sku("PLAIN");
        op.mutable_reserve()->set_reference("t" + std::to_string(t) + "-" + std::to_string(i));
        op.mutable_reserve()->set_quantity(1);
        committer.Submit(ctx, op, [&, done](absl::StatusOr<v1::OperationResult> r) {
          (r.ok() ? granted : refused)++;
          done->set_value();
        });
      }
      for (auto& w : waits) w.wait();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(granted == 50);
  CHECK(refused == 110);
  CHECK(ledger->GetAtp("PLAIN")->available() == 0);
  CHECK(committer.batches() <= committer.operations());
  RequireVerified();
}

TEST_CASE_METHOD(Fixture, "state, sequence and clock survive a reopen", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 5).ok());
  auto before = ledger->Status();
  uint64_t last_hlc = ledger->ListMovements({})->movements(0).hlc();
  clock.Set(1000);  // the wall clock went far back while the node was down
  Reopen();
  auto after = ledger->Status();
  CHECK(after.node_id() == "n1");
  CHECK(after.epoch() == before.epoch());
  CHECK(after.last_seq() == 1);
  auto r = Receive("PLAIN", "A1", 1);
  REQUIRE(r.ok());
  CHECK(r->movements(0).seq() == 2);
  CHECK(r->movements(0).hlc() > last_hlc);
  CHECK(OnHand("PLAIN") == 6);
  // Another node id on this database is refused.
  ledger.reset();
  auto wrong = Ledger::Open({.path = dir + "/node.db", .node_id = "n2"});
  CHECK(wrong.status().code() == absl::StatusCode::kFailedPrecondition);
  Reopen();
}

TEST_CASE_METHOD(Fixture, "outbox carries every event in order and trims on ack", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 5).ok());
  REQUIRE(Reserve("PLAIN", "o", 2).ok());
  auto events = ledger->ReadOutbox(0, 100);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].seq() == 1);
  CHECK((*events)[0].node_id() == "n1");
  CHECK((*events)[0].movement().type() == v1::RECEIPT);
  CHECK((*events)[1].movement().type() == v1::RESERVE);
  CHECK((*events)[1].hlc() > (*events)[0].hlc());
  REQUIRE(ledger->TrimOutbox(1).ok());
  CHECK(ledger->OutboxDepth() == 1);
  CHECK(ledger->TrimOutbox(5).code() == absl::StatusCode::kInvalidArgument);
  Reopen();
  CHECK(ledger->OutboxDepth() == 1);
  REQUIRE(ledger->TrimOutbox(2).ok());
  Reopen();
  REQUIRE(Receive("PLAIN", "A1", 1).ok());
  events = ledger->ReadOutbox(0, 100);
  REQUIRE(events->size() == 1);
  CHECK((*events)[0].seq() == 3);  // the event sequence continues after a full trim
}

TEST_CASE_METHOD(Fixture, "history filters and pages", "[ledger]") {
  for (int i = 0; i < 7; ++i) REQUIRE(Receive("PLAIN", i % 2 ? "A1" : "B1", 1).ok());
  REQUIRE(Reserve("PLAIN", "o", 1).ok());
  node::MovementFilter f;
  f.limit = 3;
  std::vector<uint64_t> seqs;
  for (;;) {
    auto page = ledger->ListMovements(f);
    REQUIRE(page.ok());
    for (const auto& m : page->movements()) seqs.push_back(m.seq());
    if (page->next_after_seq() == 0) break;
    f.after_seq = page->next_after_seq();
  }
  CHECK(seqs == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  node::MovementFilter by_bin;
  by_bin.bin = "A1";
  CHECK(ledger->ListMovements(by_bin)->movements_size() == 3);
  node::MovementFilter by_type;
  by_type.type = v1::RESERVE;
  CHECK(ledger->ListMovements(by_type)->movements_size() == 1);
  node::MovementFilter by_op;
  by_op.operator_id = "bob";
  CHECK(ledger->ListMovements(by_op)->movements_size() == 0);
}

TEST_CASE_METHOD(Fixture, "CSV import: all rows or none, errors name lines", "[ledger]") {
  auto bad = ledger->ImportSkus(
      "code,gtin,tracking,safety_stock\nNEW1,,none,0\nNEW2,123,none,0\nNEW3,,sometimes,-1\n"
      "NEW1,,none,0\n");
  REQUIRE_FALSE(bad.ok());
  std::string msg(bad.status().message());
  CHECK(msg.find("line 3") != std::string::npos);
  CHECK(msg.find("line 4") != std::string::npos);
  CHECK(msg.find("line 5") != std::string::npos);
  CHECK(ledger->GetSku("NEW1").status().code() == absl::StatusCode::kNotFound);
  CHECK_FALSE(ledger->ImportBins("code,walk_order\nX,abc\n").ok());
  CHECK_FALSE(ledger->ImportSkus("code,colour\nX,red\n").ok());

  // Updating a SKU bumps its version; tracking cannot change while stock is on hand.
  REQUIRE(Receive("PLAIN", "A1", 1).ok());
  CHECK_FALSE(ledger->ImportSkus("code,tracking\nPLAIN,lot\n").ok());
  REQUIRE(ledger->ImportSkus("code,name,safety_stock\nPLAIN,Renamed,1\n").ok());
  auto sku = ledger->GetSku("PLAIN");
  REQUIRE(sku.ok());
  CHECK(sku->name() == "Renamed");
  CHECK(sku->version() == 2);
  CHECK(ledger->GetAtp("PLAIN")->available() == 0);
}

TEST_CASE_METHOD(Fixture, "verify detects a tampered balance", "[ledger]") {
  REQUIRE(Receive("PLAIN", "A1", 4).ok());
  RequireVerified();
  {
    SQLite::Database db(dir + "/node.db", SQLite::OPEN_READWRITE);
    db.exec("UPDATE balances SET on_hand = 5");
    db.exec("UPDATE sku_totals SET reserved = 1");
  }
  auto v = ledger->Verify();
  REQUIRE(v.ok());
  CHECK_FALSE(v->ok());
  CHECK(v->differences_size() == 2);
}
