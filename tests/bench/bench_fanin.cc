// bench_fanin: many nodes streaming steady traffic into one depot-central over real gRPC.
// A real depot-central process (durable SQLite); N simulated nodes in this process, each a real
// ledger (SQLite, synchronous=NORMAL since in production each node has its own disk) with its
// own NodeSyncEngine and gRPC SyncClient. Every node commits receipts at a steady rate; the
// bench polls central's node list and measures, per event, the time from its commit at the node
// to the moment central's mark covered it (upper bound, polling every 20 ms). Reports central's
// CPU use and p50/p99/max lag. Target: p99 lag under 1 s with 200 nodes.
// Usage: bench_fanin [--nodes N] [--rate EVENTS_PER_NODE_PER_S] [--seconds S] [--quick]
#include <stdlib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/http_client.h"
#include "spdlog/spdlog.h"
#include "common/json.h"
#include "depot/v1/central.pb.h"
#include "node/node_sync.h"
#include "node/sync_client.h"
#include "tests/support/central_support.h"
#include "tests/support/test_support.h"

using namespace depot;
using Steady = std::chrono::steady_clock;

namespace {

double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

struct SimNode {
  std::unique_ptr<node::Ledger> ledger;
  std::unique_ptr<node::NodeSyncEngine> engine;
  std::unique_ptr<node::SyncClient> client;
  std::mutex mu;
  std::vector<std::pair<uint64_t, Steady::time_point>> pending;  // seq -> commit time
};

}  // namespace

int main(int argc, char** argv) {
  int nodes = 200;
  double rate = 10, seconds = 20;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      nodes = 5;
      seconds = 2;
    } else if (!std::strcmp(argv[i], "--nodes") && i + 1 < argc) {
      nodes = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--rate") && i + 1 < argc) {
      rate = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_fanin [--nodes N] [--rate R] [--seconds S] [--quick]\n");
      return 2;
    }
  }
  rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);

  const std::string dir = testing::MakeTempDir("depot-bench-fanin-");
  testing::CentralProcess central(dir + "/central.db");
  if (auto s = central.Start(); !s.ok()) {
    std::fprintf(stderr, "central: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto http = http::NewCurlClient();
  std::string sites = "id,name\n", bins = "site,code\n";
  for (int i = 0; i < nodes; ++i) {
    sites += "n" + std::to_string(i) + ",Node " + std::to_string(i) + "\n";
    bins += "n" + std::to_string(i) + ",B1\n";
  }
  const std::vector<std::pair<std::string, std::string>> hdr = {{"X-Depot-Operator", "bench"},
                                                                {"Content-Type", "text/csv"}};
  for (auto& [kind, body] : std::vector<std::pair<std::string, std::string>>{
           {"sites", sites}, {"skus", "code\nSKU-1\nSKU-2\n"}, {"bins", bins}}) {
    auto r = http->Send("POST", central.url() + "/v1/import/" + kind, body, hdr);
    if (!r.ok() || r->status != 200) {
      std::fprintf(stderr, "import %s failed\n", kind.c_str());
      return 1;
    }
  }

  spdlog::set_level(spdlog::level::warn);  // 200 "welcomed" lines are noise here
  std::vector<std::unique_ptr<SimNode>> sim(nodes);
  const std::string address = "127.0.0.1:" + std::to_string(central.grpc_port());
  for (int i = 0; i < nodes; ++i) {
    auto& n = sim[i] = std::make_unique<SimNode>();
    auto l = node::Ledger::Open({.path = dir + "/n" + std::to_string(i) + ".db",
                                 .node_id = "n" + std::to_string(i),
                                 .durable = false,
                                 .read_connections = 1});
    if (!l.ok()) {
      std::fprintf(stderr, "node %d: %s\n", i, std::string(l.status().message()).c_str());
      return 1;
    }
    n->ledger = std::move(*l);
    n->engine = std::make_unique<node::NodeSyncEngine>(n->ledger.get(), &SystemClock());
    n->client = std::make_unique<node::SyncClient>(n->engine.get(), address);
    n->client->Start();
  }
  // Wait for master data everywhere.
  auto deadline = Steady::now() + std::chrono::seconds(60);
  for (auto& n : sim) {
    while (!n->ledger->GetSku("SKU-1").ok() || !n->ledger->ListBins()->bins_size()) {
      if (Steady::now() > deadline) {
        std::fprintf(stderr, "master data did not reach every node\n");
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Steady traffic: writers spread over 4 threads, each node every 1/rate seconds.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::vector<std::thread> writers;
  const int kWriters = 4;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      RequestContext ctx{"bench", ""};
      v1::Operation op;
      op.mutable_receipt()->set_sku("SKU-1");
      op.mutable_receipt()->set_bin("B1");
      op.mutable_receipt()->set_quantity(1);
      const auto period = std::chrono::duration<double>(1.0 / rate);
      auto next = Steady::now();
      while (!stop) {
        next += std::chrono::duration_cast<Steady::duration>(period);
        for (int i = w; i < nodes; i += kWriters) {
          auto r = sim[i]->ledger->Apply(ctx, op);
          if (!r.ok()) continue;
          {
            std::lock_guard<std::mutex> lock(sim[i]->mu);
            sim[i]->pending.emplace_back(r->movements(0).seq(), Steady::now());
          }
          sim[i]->client->Notify();
          ++written;
        }
        std::this_thread::sleep_until(next);
      }
    });
  }

  std::vector<double> lags_ms;
  const double cpu0 = CpuSeconds(central.pid());
  const auto start = Steady::now();
  auto poll = [&] {
    auto r = http->Send("GET", central.url() + "/v1/nodes");
    if (!r.ok() || r->status != 200) return;
    v1::ListNodesResponse list;
    if (!JsonToMessage(r->body, &list).ok()) return;
    const auto now = Steady::now();
    for (const auto& info : list.nodes()) {
      const int i = std::atoi(info.node_id().c_str() + 1);
      if (i < 0 || i >= nodes) continue;
      std::lock_guard<std::mutex> lock(sim[i]->mu);
      auto& p = sim[i]->pending;
      size_t k = 0;
      while (k < p.size() && p[k].first <= info.applied_seq()) {
        lags_ms.push_back(std::chrono::duration<double, std::milli>(now - p[k].second).count());
        ++k;
      }
      p.erase(p.begin(), p.begin() + k);
    }
  };
  while (std::chrono::duration<double>(Steady::now() - start).count() < seconds) {
    poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  for (auto& t : writers) t.join();
  const double elapsed = std::chrono::duration<double>(Steady::now() - start).count();
  const double cpu = CpuSeconds(central.pid()) - cpu0;
  // Drain: everything written must arrive.
  size_t left = 1;
  for (auto until = Steady::now() + std::chrono::seconds(30); left && Steady::now() < until;) {
    poll();
    left = 0;
    for (auto& n : sim) {
      std::lock_guard<std::mutex> lock(n->mu);
      left += n->pending.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& n : sim) n->client->Stop();
  std::sort(lags_ms.begin(), lags_ms.end());
  auto pct = [&](double p) {
    return lags_ms.empty() ? 0.0 : lags_ms[std::min(lags_ms.size() - 1,
                                                    static_cast<size_t>(p * lags_ms.size()))];
  };
  std::printf("bench_fanin: %d nodes x %.0f events/s for %.0f s into one depot-central\n\n", nodes,
              rate, elapsed);
  std::printf("%-48s %12s   %s\n", "what", "value", "target");
  std::printf("%-48s %12.0f\n", "events committed at the nodes (events/s)", written / elapsed);
  std::printf("%-48s %12zu   all of them: %s\n", "events seen applied at central", lags_ms.size(),
              left == 0 ? "yes" : "NO");
  std::printf("%-48s %12.0f%%   of one core (2 cores in all)\n", "central CPU", 100 * cpu / elapsed);
  std::printf("%-48s %12.0f ms\n", "lag commit -> central apply, p50", pct(0.50));
  std::printf("%-48s %12.0f ms   < 1000 ms\n", "lag commit -> central apply, p99", pct(0.99));
  std::printf("%-48s %12.0f ms\n", "lag commit -> central apply, max",
              lags_ms.empty() ? 0.0 : lags_ms.back());
  sim.clear();
  central.Stop();
  std::filesystem::remove_all(dir);
  return left == 0 ? 0 : 1;
}
