// bench_ledger: the node ledger in-process, next to raw SQLite on the same disk in the same run.
//   1. durable single-row commits: raw SQLite INSERT vs ledger receipt and reserve (one
//      transaction each, synchronous=FULL);
//   2. batched: raw INSERTs 1000 per transaction vs ledger ApplyBatch of 1000 operations;
//   3. ATP lookup latency with 100,000 SKUs and 1,000,000 movements (p50, p99).
// Usage: bench_ledger [--quick] [--seconds S] [--skus N] [--movements M] [--dir DIR]
#include <SQLiteCpp/SQLiteCpp.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/sqlite_db.h"
#include "node/ledger.h"
#include "tests/bench/bench_util.h"

using namespace depot;
using Steady = std::chrono::steady_clock;

namespace {

double Seconds(Steady::time_point since) {
  return std::chrono::duration<double>(Steady::now() - since).count();
}

v1::Operation Receipt(const std::string& sku, const std::string& bin, int64_t qty) {
  v1::Operation op;
  op.mutable_receipt()->set_sku(sku);
  op.mutable_receipt()->set_bin(bin);
  op.mutable_receipt()->set_quantity(qty);
  return op;
}

v1::Operation Reserve(const std::string& sku, int64_t n) {
  v1::Operation op;
  op.mutable_reserve()->set_sku(sku);
  op.mutable_reserve()->set_reference("order-" + std::to_string(n));
  op.mutable_reserve()->set_quantity(1);
  return op;
}

std::string SkuCode(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "SKU-%06d", i);
  return buf;
}

void Row(const char* what, double value, const char* unit, const std::string& baseline) {
  std::printf("%-52s %14.0f %-10s %s\n", what, value, unit, baseline.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int skus = 100000, movements = 1000000;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      seconds = 0.3;
      skus = 1000;
      movements = 10000;
    } else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--skus") && i + 1 < argc) {
      skus = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--movements") && i + 1 < argc) {
      movements = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: bench_ledger [--quick] [--seconds S] [--skus N] [--movements M] "
                   "[--dir DIR]\n");
      return 2;
    }
  }
  if (dir.empty()) {
    char tmpl[] = "/tmp/depot-bench-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  std::printf("bench_ledger: dir %s, %.1f s per measurement\n\n", dir.c_str(), seconds);
  std::printf("%-52s %14s %-10s %s\n", "what", "value", "unit", "baseline / target");

  const double raw_single = bench::RawSingleCommits(dir + "/raw1.db", seconds);
  Row("raw SQLite single-row durable commit", raw_single, "commits/s", "(baseline)");
  const double raw_batch = bench::RawBatchedRows(dir + "/raw2.db", seconds);
  Row("raw SQLite batched insert (1000/txn)", raw_batch, "rows/s", "(baseline)");

  auto ledger = node::Ledger::Open({.path = dir + "/ledger.db", .node_id = "bench"});
  if (!ledger.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(ledger.status().message()).c_str());
    return 1;
  }
  auto& L = **ledger;
  {
    std::string csv = "code,name\n";
    for (int i = 0; i < skus; ++i) csv += SkuCode(i) + ",Item " + std::to_string(i) + "\n";
    auto start = Steady::now();
    auto n = L.ImportSkus(csv);
    if (!n.ok()) return 1;
    std::printf("  (imported %d SKUs in %.2f s)\n", skus, Seconds(start));
    std::string bins = "code,walk_order\n";
    for (int b = 0; b < 100; ++b) bins += "B" + std::to_string(b) + "," + std::to_string(b) + "\n";
    if (!L.ImportBins(bins).ok()) return 1;
  }
  RequestContext ctx{"bench", ""};

  // 1. single durable operations
  double receipt_rate, reserve_rate;
  {
    auto op = Receipt("SKU-000000", "B0", 1);
    auto start = Steady::now();
    int64_t n = 0;
    while (Seconds(start) < seconds) {
      if (!L.Apply(ctx, op).ok()) return 1;
      ++n;
    }
    receipt_rate = n / Seconds(start);
    if (!L.Apply(ctx, Receipt("SKU-000001", "B0", 1'000'000'000)).ok()) return 1;
    start = Steady::now();
    n = 0;
    while (Seconds(start) < seconds) {
      if (!L.Apply(ctx, Reserve("SKU-000001", n)).ok()) return 1;
      ++n;
    }
    reserve_rate = n / Seconds(start);
  }
  char target[128];
  std::snprintf(target, sizeof target, "%.0f%% of raw commit (target >= 50%%)",
                100 * receipt_rate / raw_single);
  Row("ledger receipt, one durable transaction each", receipt_rate, "ops/s", target);
  std::snprintf(target, sizeof target, "%.0f%% of raw commit (target >= 50%%)",
                100 * reserve_rate / raw_single);
  Row("ledger reserve, one durable transaction each", reserve_rate, "ops/s", target);

  // 2. batches of 1000 (what the group committer does under load), and the bulk load for 3.
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick_sku(0, skus - 1), pick_bin(0, 99);
  {
    std::vector<v1::Operation> ops(1000);
    std::vector<node::WriteItem> items(1000);
    int64_t done = 0;
    auto start = Steady::now();
    while (done < movements) {
      for (int i = 0; i < 1000; ++i) {
        ops[i] = Receipt(SkuCode(pick_sku(rng)), "B" + std::to_string(pick_bin(rng)), 5);
        items[i] = {&ctx, &ops[i]};
      }
      for (auto& r : L.ApplyBatch(items)) {
        if (!r.ok()) return 1;
      }
      done += 1000;
    }
    double rate = done / Seconds(start);
    std::snprintf(target, sizeof target, "%.0f%% of raw batched insert", 100 * rate / raw_batch);
    Row("ledger receipts in batches of 1000", rate, "ops/s", target);
  }

  // 3. ATP lookups on the loaded ledger.
  {
    const int lookups = std::min(200000, std::max(10000, skus));
    std::vector<double> us;
    us.reserve(lookups);
    for (int i = 0; i < lookups; ++i) {
      std::string code = SkuCode(pick_sku(rng));
      auto t0 = Steady::now();
      auto atp = L.GetAtp(code);
      us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
      if (!atp.ok()) return 1;
    }
    std::sort(us.begin(), us.end());
    std::printf("  (ledger now holds %llu movements, %d SKUs)\n",
                static_cast<unsigned long long>(L.LastSeq()), skus);
    Row("ATP lookup p50", us[us.size() / 2], "us", "");
    Row("ATP lookup p99", us[us.size() * 99 / 100], "us", "target p99 < 1000 us");
    Row("ATP lookup max", us.back(), "us", "");
  }
  std::filesystem::remove_all(dir);
  return 0;
}
