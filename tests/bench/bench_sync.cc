// bench_sync: central's catch-up when a node that was offline reconnects with a backlog.
// Both sync engines run in this process over real SQLite files (durable, synchronous=FULL at
// central); the transport is a direct function call, so the figure is what central's apply path
// (event log + mirror + mark in one transaction per batch) and the node's outbox reads sustain.
// Baseline in the same run: raw SQLite batched inserts of rows shaped like central's event log.
// Usage: bench_sync [--events N] [--batch B] [--quick]
#include <SQLiteCpp/SQLiteCpp.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "central/central_sync.h"
#include "central/sqlite_store.h"
#include "common/sqlite_db.h"
#include "node/node_sync.h"

using namespace depot;
using Steady = std::chrono::steady_clock;

namespace {

double Since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

// Rows shaped like central's event log: (node, epoch, seq) key, hlc, hash, ~120-byte payload.
double RawBatched(const std::string& path, int64_t rows, int batch) {
  auto db = db::Open({.path = path, .durable = true});
  (*db)->exec(
      "CREATE TABLE events(node_id TEXT, epoch INTEGER, seq INTEGER, hlc INTEGER, hash INTEGER, "
      "payload BLOB, PRIMARY KEY(node_id, epoch, seq)) WITHOUT ROWID");
  SQLite::Statement ins(**db, "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)");
  std::string payload(120, 'x');
  auto start = Steady::now();
  for (int64_t i = 0; i < rows;) {
    SQLite::Transaction tx(**db);
    for (int j = 0; j < batch && i < rows; ++j, ++i) {
      ins.bind(1, "node-1");
      ins.bind(2, 42);
      ins.bind(3, i + 1);
      ins.bind(4, i * 7);
      ins.bind(5, i * 31);
      ins.bindNoCopy(6, payload.data(), static_cast<int>(payload.size()));
      ins.exec();
      ins.reset();
    }
    tx.commit();
  }
  return rows / Since(start);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t events = 1'000'000;
  uint32_t batch = 1000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      events = 20'000;
    } else if (!std::strcmp(argv[i], "--events") && i + 1 < argc) {
      events = std::atoll(argv[++i]);
    } else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) {
      batch = static_cast<uint32_t>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bench_sync [--events N] [--batch B] [--quick]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/depot-bench-sync-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::printf("bench_sync: %lld events, batches of %u, dir %s\n\n",
              static_cast<long long>(events), batch, dir.c_str());

  const double raw = RawBatched(dir + "/raw.db", std::min<int64_t>(events, 1'000'000), batch);

  // Central with one site, 1000 SKUs and 50 bins; the node gets them through the feed.
  auto store = central::OpenSqliteStore({.path = dir + "/central.db", .durable = true});
  if (!store.ok()) return 1;
  std::string skus = "code\n", bins = "site,code,walk_order\n";
  for (int i = 0; i < 1000; ++i) skus += "SKU-" + std::to_string(i) + "\n";
  for (int i = 0; i < 50; ++i) bins += "node-1,B" + std::to_string(i) + "," + std::to_string(i) + "\n";
  if (!(*store)->Import("sites", "id,name\nnode-1,Bench\n").ok() ||
      !(*store)->Import("skus", skus).ok() || !(*store)->Import("bins", bins).ok()) {
    return 1;
  }
  central::CentralSyncEngine central(store->get(), &SystemClock());
  auto ledger = node::Ledger::Open({.path = dir + "/node.db", .node_id = "node-1", .durable = false});
  if (!ledger.ok()) return 1;
  node::NodeSyncOptions opts;
  opts.batch_size = batch;
  opts.window = batch * 8;
  node::NodeSyncEngine engine(ledger->get(), &SystemClock(), opts);

  double central_secs = 0;  // time spent inside central's engine (its apply path)
  auto exchange = [&](bool count_only_events) {
    std::vector<v1::CentralMessage> down;
    std::vector<v1::NodeMessage> up;
    auto session = central.Open(engine.Connect().hello(), &down);
    if (!session.ok()) {
      std::fprintf(stderr, "refused: %s\n", std::string(session.status().message()).c_str());
      std::exit(1);
    }
    while (!down.empty() || !up.empty()) {
      for (auto& m : down) (void)engine.Handle(m, &up);
      down.clear();
      engine.Pump(&up);
      for (auto& m : up) {
        if (count_only_events && m.has_heartbeat()) continue;
        auto t = Steady::now();
        (void)central.Handle(*session, m, &down);
        central_secs += Since(t);
      }
      up.clear();
      if (engine.Status().acked_seq == (*ledger)->LastEventSeq() && down.empty()) break;
    }
    central.Close(*session);
    engine.Disconnect("");
  };
  exchange(false);  // master data down

  // The offline period: the node writes its backlog (receipts across SKUs and bins).
  {
    auto start = Steady::now();
    RequestContext ctx{"bench", ""};
    std::mt19937 rng(7);
    std::vector<v1::Operation> ops(1000);
    std::vector<node::WriteItem> items(1000);
    for (int64_t done = 0; done < events; done += 1000) {
      for (int i = 0; i < 1000; ++i) {
        auto* r = ops[i].mutable_receipt();
        r->set_sku("SKU-" + std::to_string(rng() % 1000));
        r->set_bin("B" + std::to_string(rng() % 50));
        r->set_quantity(1 + rng() % 5);
        items[i] = {&ctx, &ops[i]};
      }
      for (auto& r : (*ledger)->ApplyBatch(items)) {
        if (!r.ok()) return 1;
      }
    }
    std::printf("  (node wrote a backlog of %llu events in %.1f s)\n",
                static_cast<unsigned long long>((*ledger)->OutboxDepth()), Since(start));
  }

  // Reconnect and catch up.
  central_secs = 0;
  auto start = Steady::now();
  exchange(true);
  const double secs = Since(start);
  const double rate = (*ledger)->LastEventSeq() / secs;
  auto node = (*store)->GetNode("node-1");
  std::printf("\n%-56s %12s   %s\n", "what", "value", "baseline / target");
  std::printf("%-56s %12.0f   %s\n", "raw SQLite batched insert, event-log rows (rows/s)", raw,
              "(baseline)");
  char note[160];
  std::snprintf(note, sizeof note, "%.0f%% of raw; targets >= 50%% of raw and >= 50,000/s",
                100 * rate / raw);
  std::printf("%-56s %12.0f   %s\n", "catch-up: events applied durably at central (events/s)",
              rate, note);
  std::printf("%-56s %12.1f\n", "catch-up time, node and central sharing 2 cores (s)", secs);
  const double central_rate = (*ledger)->LastEventSeq() / central_secs;
  std::snprintf(note, sizeof note, "%.0f%% of raw (node-side reads and trims excluded)",
                100 * central_rate / raw);
  std::printf("%-56s %12.0f   %s\n", "central apply path alone (events/s)", central_rate, note);
  std::printf("%-56s %12llu   node outbox depth after: %llu\n", "central mark after catch-up",
              static_cast<unsigned long long>(node->applied_seq),
              static_cast<unsigned long long>((*ledger)->OutboxDepth()));
  std::filesystem::remove_all(dir);
  return node->applied_seq == (*ledger)->LastEventSeq() ? 0 : 1;
}
