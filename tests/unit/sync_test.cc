// The sync engines wired back to back in one thread (no transport): master data flows down,
// events flow up exactly once, refusals and restores behave as docs/SYNC.md says. Faults and
// random schedules are the simulation's job (tests/sim).
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "central/central_sync.h"
#include "central/sqlite_store.h"
#include "common/stock_rules.h"
#include "node/node_sync.h"

using namespace depot;

namespace {

struct Net {
  std::string dir;
  ManualClock clock;
  std::unique_ptr<central::CentralStore> store;
  std::unique_ptr<central::CentralSyncEngine> central;
  RequestContext ctx{"tester", ""};

  struct Node {
    std::unique_ptr<node::Ledger> ledger;
    std::unique_ptr<node::NodeSyncEngine> engine;
    uint64_t session = 0;
    absl::Status refused;
  };
  std::map<std::string, Node> nodes;

  Net() {
    char tmpl[] = "/tmp/depot-sync-XXXXXX";
    dir = mkdtemp(tmpl);
    auto s = central::OpenSqliteStore({.path = dir + "/central.db", .durable = false});
    REQUIRE(s.ok());
    store = std::move(*s);
    central = std::make_unique<central::CentralSyncEngine>(store.get(), &clock);
    REQUIRE(store->Import("sites", "id,name,kind\nn1,North,warehouse\nn2,South,store\n").ok());
    REQUIRE(store->Import("skus",
                          "code,tracking,expiry_tracked,safety_stock\nA,none,false,1\n"
                          "L,lot,true,0\n")
                .ok());
    REQUIRE(store->Import("bins", "site,code,walk_order\nn1,B1,1\nn1,B2,2\nn2,S1,1\n").ok());
  }
  ~Net() {
    nodes.clear();
    central.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  Node& Open(const std::string& id) {
    Node& n = nodes[id];
    n.engine.reset();
    n.ledger.reset();
    auto l = node::Ledger::Open(
        {.path = dir + "/" + id + ".db", .node_id = id, .durable = false, .clock = &clock,
         // The sync mechanics with exact event counts: no selling-rights events (those are
         // tested in node_rights_test, central_rights_test and the rights integration test).
         .selling_rights = false});
    REQUIRE(l.ok());
    n.ledger = std::move(*l);
    n.engine = std::make_unique<node::NodeSyncEngine>(n.ledger.get(), &clock);
    return n;
  }

  // Connects a node and exchanges messages until nothing is left to send.
  void Sync(const std::string& id, int rounds = 50) {
    Node& n = nodes.at(id);
    std::vector<v1::CentralMessage> down;
    std::vector<v1::NodeMessage> up;
    auto hello = n.engine->Connect();
    auto session = central->Open(hello.hello(), &down);
    n.refused = session.status();
    if (!session.ok()) {
      n.engine->Disconnect(std::string(session.status().message()));
      return;
    }
    n.session = *session;
    for (int i = 0; i < rounds && (!down.empty() || !up.empty() || i < 2); ++i) {
      for (auto& m : down) REQUIRE(n.engine->Handle(m, &up).ok());
      down.clear();
      n.engine->Pump(&up);
      for (auto& m : up) REQUIRE(central->Handle(n.session, m, &down).ok());
      up.clear();
      central->PumpFeed(n.session, &down);
    }
    central->Close(n.session);
    n.engine->Disconnect("");
  }

  v1::Operation Receipt(const std::string& sku, const std::string& bin, int64_t q,
                        const std::string& lot = "", const std::string& expiry = "") {
    v1::Operation op;
    op.mutable_receipt()->set_sku(sku);
    op.mutable_receipt()->set_bin(bin);
    op.mutable_receipt()->set_quantity(q);
    op.mutable_receipt()->set_lot(lot);
    op.mutable_receipt()->set_expiry(expiry);
    return op;
  }
  v1::Operation Reserve(const std::string& sku, const std::string& ref, int64_t q) {
    v1::Operation op;
    op.mutable_reserve()->set_sku(sku);
    op.mutable_reserve()->set_reference(ref);
    op.mutable_reserve()->set_quantity(q);
    return op;
  }
};

}  // namespace

TEST_CASE("master data flows down the feed; events flow up exactly once", "[sync]") {
  Net net;
  auto& n1 = net.Open("n1");
  net.Open("n2");
  net.Sync("n1");
  net.Sync("n2");
  REQUIRE(n1.ledger->GetSku("A").ok());
  CHECK(n1.ledger->GetAtp("A")->safety_stock() == 1);
  CHECK(n1.ledger->ListBins()->bins_size() == 2);
  CHECK(net.nodes["n2"].ledger->ListBins()->bins_size() == 1);
  // The node is now central-managed.
  CHECK(n1.ledger->ImportSkus("code\nX\n").status().code() ==
        absl::StatusCode::kFailedPrecondition);

  REQUIRE(n1.ledger->Apply(net.ctx, net.Receipt("A", "B1", 10)).ok());
  REQUIRE(n1.ledger->Apply(net.ctx, net.Receipt("L", "B2", 4, "LOT1", "2030-01-01")).ok());
  REQUIRE(n1.ledger->Apply(net.ctx, net.Reserve("A", "o1", 3)).ok());
  REQUIRE(net.nodes["n2"].ledger->Apply(net.ctx, net.Receipt("A", "S1", 7)).ok());
  net.Sync("n1");
  net.Sync("n2");
  CHECK(n1.ledger->OutboxDepth() == 0);

  auto stock = net.store->NetworkStock("A", "");
  REQUIRE(stock.ok());
  REQUIRE(stock->items_size() == 2);
  CHECK(stock->items(0).site() == "n1");
  CHECK(stock->items(0).on_hand() == 10);
  CHECK(stock->items(0).reserved() == 3);
  CHECK(stock->items(0).available() == 6);
  CHECK(stock->items(1).on_hand() == 7);
  CHECK(stock->total_on_hand() == 17);
  auto mirror = net.store->Mirror("n1");
  REQUIRE(mirror.ok());
  CHECK(mirror->on_hand[{"L", "LOT1"}] == 4);

  // Replaying every event (a duplicate delivery) changes nothing.
  auto node = net.store->GetNode("n1");
  REQUIRE(node.ok());
  CHECK(node->applied_seq == 3);
  auto digest = net.store->EventDigest("n1");
  std::vector<v1::CentralMessage> down;
  auto hello = n1.engine->Connect();
  auto session = net.central->Open(hello.hello(), &down);
  REQUIRE(session.ok());
  v1::NodeMessage replay;
  auto movements = n1.ledger->ListMovements({});
  for (const auto& m : movements->movements()) {
    auto* e = replay.mutable_events()->add_events();
    e->set_node_id("n1");
    e->set_epoch(n1.ledger->GetIdentity().epoch);
    e->set_seq(m.seq());
    e->set_hlc(m.hlc());
    *e->mutable_movement() = m;
  }
  down.clear();
  REQUIRE(net.central->Handle(*session, replay, &down).ok());
  CHECK(down.back().ack().applied_seq() == 3);
  CHECK(net.store->EventDigest("n1").value() == digest.value());
  CHECK(net.store->NetworkStock("A", "n1")->items(0).on_hand() == 10);
  // The digest central keeps equals the node's own.
  uint64_t sum = 0;
  for (const auto& m : movements->movements()) sum += EventHash(m.seq(), m);
  CHECK(digest->first == sum);
  CHECK(digest->second == 3);
}

TEST_CASE("events after a gap are held back until it fills", "[sync]") {
  Net net;
  auto& n1 = net.Open("n1");
  net.Sync("n1");
  for (int i = 0; i < 3; ++i) REQUIRE(n1.ledger->Apply(net.ctx, net.Receipt("A", "B1", 1)).ok());
  auto events = n1.ledger->ReadOutbox(0, 10);
  REQUIRE(events->size() == 3);
  std::vector<v1::CentralMessage> down;
  auto session = net.central->Open(n1.engine->Connect().hello(), &down);
  REQUIRE(session.ok());
  auto batch = [&](int i) {
    v1::NodeMessage m;
    *m.mutable_events()->add_events() = (*events)[i];
    return m;
  };
  down.clear();
  REQUIRE(net.central->Handle(*session, batch(2), &down).ok());
  CHECK(down.back().ack().applied_seq() == 0);  // seq 3 held: 1 and 2 missing
  REQUIRE(net.central->Handle(*session, batch(0), &down).ok());
  CHECK(down.back().ack().applied_seq() == 1);
  REQUIRE(net.central->Handle(*session, batch(1), &down).ok());
  CHECK(down.back().ack().applied_seq() == 3);  // the held event applied once the gap filled
  CHECK(net.store->NetworkStock("A", "n1")->items(0).on_hand() == 3);
}

TEST_CASE("unknown nodes, stale epochs and replaced databases are refused", "[sync]") {
  Net net;
  auto& stranger = net.Open("n9");
  net.Sync("n9");
  CHECK(stranger.refused.code() == absl::StatusCode::kNotFound);
  auto ex = net.store->ListExceptions("n9", "");
  REQUIRE(ex.ok());
  REQUIRE(ex->exceptions_size() == 1);
  CHECK(ex->exceptions(0).kind() == "unknown_node");

  // n1 writes and syncs; a copy of its file taken earlier comes back without --restore-from.
  auto& n1 = net.Open("n1");
  net.Sync("n1");
  const std::string db = net.dir + "/n1.db";
  n1.engine.reset();
  n1.ledger.reset();
  std::filesystem::copy_file(db, net.dir + "/copy.db");
  net.Open("n1");
  for (int i = 0; i < 3; ++i) {
    REQUIRE(net.nodes["n1"].ledger->Apply(net.ctx, net.Receipt("A", "B1", 1)).ok());
  }
  net.Sync("n1");
  REQUIRE(net.nodes["n1"].refused.ok());
  net.nodes["n1"].engine.reset();
  net.nodes["n1"].ledger.reset();
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");
  std::filesystem::copy_file(net.dir + "/copy.db", db,
                             std::filesystem::copy_options::overwrite_existing);
  net.Open("n1");
  net.Sync("n1");
  CHECK(net.nodes["n1"].refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(net.store->ListExceptions("n1", "behind_central")->exceptions_size() == 1);
}

TEST_CASE("a restore from backup starts a new epoch and reverses the lost events", "[sync]") {
  Net net;
  auto& n1 = net.Open("n1");
  net.Sync("n1");
  REQUIRE(n1.ledger->Apply(net.ctx, net.Receipt("A", "B1", 5)).ok());
  net.Sync("n1");
  const std::string db = net.dir + "/n1.db";
  n1.engine.reset();
  n1.ledger.reset();
  std::filesystem::copy_file(db, net.dir + "/backup.db");
  auto& again = net.Open("n1");
  REQUIRE(again.ledger->Apply(net.ctx, net.Receipt("A", "B1", 2)).ok());
  REQUIRE(again.ledger->Apply(net.ctx, net.Receipt("A", "B2", 1)).ok());
  net.Sync("n1");
  CHECK(net.store->NetworkStock("A", "n1")->items(0).on_hand() == 8);
  const uint64_t old_epoch = again.ledger->GetIdentity().epoch;
  again.engine.reset();
  again.ledger.reset();

  REQUIRE(node::Ledger::RestoreFromBackup(net.dir + "/backup.db", db).ok());
  auto& restored = net.Open("n1");
  auto id = restored.ledger->GetIdentity();
  CHECK(id.epoch != old_epoch);
  CHECK(id.previous_epoch == old_epoch);
  CHECK(id.previous_last_seq == 1);
  net.Sync("n1");
  REQUIRE(restored.refused.ok());
  // Central's mirror now equals the restored node: the two lost receipts were reversed.
  CHECK(net.store->NetworkStock("A", "n1")->items(0).on_hand() == 5);
  auto ex = net.store->ListExceptions("n1", "restore_lost_events");
  REQUIRE(ex->exceptions_size() == 1);
  CHECK(ex->exceptions(0).message().find("2 events") != std::string::npos);
  // New events continue the sequence in the new epoch and are applied.
  REQUIRE(restored.ledger->Apply(net.ctx, net.Receipt("A", "B1", 4)).ok());
  net.Sync("n1");
  CHECK(net.store->NetworkStock("A", "n1")->items(0).on_hand() == 9);
  CHECK(restored.ledger->OutboxDepth() == 0);

  // The old database (old epoch) coming back is stale.
  restored.engine.reset();
  restored.ledger.reset();
  std::filesystem::rename(db, net.dir + "/restored.db");
  std::filesystem::remove(db + "-wal");
  std::filesystem::remove(db + "-shm");
  std::filesystem::copy_file(net.dir + "/backup.db", db);
  // backup.db has the old epoch but no restore marker: it predates the restore.
  net.Open("n1");
  net.Sync("n1");
  CHECK(net.nodes["n1"].refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(net.store->ListExceptions("n1", "stale_epoch")->exceptions_size() == 1);
}

TEST_CASE("central's master data replaces what a node loaded from CSV before", "[sync]") {
  Net net;
  auto& n1 = net.Open("n1");
  REQUIRE(n1.ledger->ImportSkus("code,safety_stock\nA,5\n").ok());  // a lone site's own data
  REQUIRE(n1.ledger->ImportBins("code\nB1\n").ok());
  net.Sync("n1");
  CHECK(n1.ledger->GetAtp("A")->safety_stock() == 1);  // central's value, same version number
  CHECK(n1.ledger->ImportSkus("code\nZ\n").status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a central that lost its database is refused instead of stalling", "[sync]") {
  Net net;
  auto& n1 = net.Open("n1");
  net.Sync("n1");
  for (int i = 0; i < 3; ++i) REQUIRE(n1.ledger->Apply(net.ctx, net.Receipt("A", "B1", 1)).ok());
  net.Sync("n1");
  REQUIRE(n1.ledger->OutboxAcked() == 3);
  // Central comes back on an empty database with the same sites.
  net.central.reset();
  net.store.reset();
  std::filesystem::remove(net.dir + "/central.db");
  auto s = central::OpenSqliteStore({.path = net.dir + "/central2.db", .durable = false});
  REQUIRE(s.ok());
  net.store = std::move(*s);
  net.central = std::make_unique<central::CentralSyncEngine>(net.store.get(), &net.clock);
  REQUIRE(net.store->Import("sites", "id\nn1\n").ok());
  net.Sync("n1");
  CHECK(n1.refused.code() == absl::StatusCode::kFailedPrecondition);
  net.Sync("n1");  // a retry counts up the same exception instead of adding another
  auto ex = net.store->ListExceptions("n1", "central_lost_events");
  REQUIRE(ex->exceptions_size() == 1);
  CHECK(ex->exceptions(0).count() == 2);
}
