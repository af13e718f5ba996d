// bench_orders: orders per second through the whole flow on this machine, with real processes:
// a depot-central and two depot-nodes (durable SQLite, loopback gRPC sync), driven over HTTP.
//   capture at central (routed by region to one of the two sites, released through the feed)
//   -> accepted and reserved at the node -> wave (a planner per node) -> pick (one scan per pick
//   task, by picker threads) -> pack and ship in one step
//   -> the shipment event reaches central, which shows the order shipped.
// Capture clients and node workers run concurrently (as a web shop and warehouse terminals
// would); the figure is orders shipped-at-central per second from the first capture to the last
// order central shows shipped. Per-step request times (p50/p99) and the CPU each process used are
// printed, next to the raw SQLite durable single-row commit rate on the same disk in the same run.
//
// Usage: bench_orders [--orders N] [--capture-threads C] [--node-threads K] [--quick]
// Exit status: 0 when every order shipped and no request failed, 1 otherwise, 2 on usage.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/central.pb.h"
#include "depot/v1/node_api.pb.h"
#include "depot/v1/orders.pb.h"
#include "tests/bench/bench_util.h"
#include "tests/support/central_support.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using Steady = std::chrono::steady_clock;
using bench::Percentile;

constexpr int kSkus = 20;
constexpr int kBins = 10;

struct Options {
  int orders = 20000;
  int capture_threads = 8;
  int node_threads = 8;   // pickers per node (plus one wave planner)
  bool quick = false;
};

double Since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}

std::string Sku(int i) { return absl::StrFormat("B-%04d", i); }
std::string Bin(int i) { return absl::StrFormat("BIN-%02d", i); }

// Latency samples of one step, in ms, collected from many threads.
struct Step {
  std::mutex mu;
  std::vector<double> ms;
  std::atomic<uint64_t> failed{0};
  std::string first_failure;
  void Add(double v) {
    std::lock_guard<std::mutex> l(mu);
    ms.push_back(v);
  }
  void Fail(const std::string& what) {
    if (failed++ == 0) {
      std::lock_guard<std::mutex> l(mu);
      first_failure = what;
    }
  }
};

// One keep-alive client; times each call into `step`; returns the body on 2xx.
class Caller {
 public:
  explicit Caller(std::string base) : base_(std::move(base)), client_(http::NewCurlClient()) {}
  // Returns the HTTP status (0 on transport error).
  int Send(const char* method, const std::string& path, const std::string& body,
           std::string* answer, Step* step) {
    const auto t0 = Steady::now();
    auto r = client_->Send(method, base_ + path, body, {{"X-Depot-Operator", "bench"}});
    if (step) step->Add(Since(t0) * 1000);
    if (!r.ok()) {
      if (step) step->Fail(std::string(r.status().message()));
      return 0;
    }
    if (answer) *answer = r->body;
    return r->status;
  }

 private:
  std::string base_;
  std::unique_ptr<http::Client> client_;
};

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_orders: %s\n", what.c_str());
  std::exit(1);
}

void MustPost(Caller& c, const std::string& path, const std::string& body) {
  std::string answer;
  int status = c.Send("POST", path, body, &answer, nullptr);
  if (status / 100 != 2) Die(absl::StrCat("POST ", path, " -> ", status, " ", answer));
}

template <typename M>
M MustGet(Caller& c, const std::string& path) {
  std::string answer;
  int status = c.Send("GET", path, "", &answer, nullptr);
  if (status != 200) Die(absl::StrCat("GET ", path, " -> ", status, " ", answer));
  M m;
  if (!JsonToMessage(answer, &m).ok()) Die(absl::StrCat("GET ", path, ": cannot parse ", answer));
  return m;
}

void WaitUntil(const std::function<bool()>& f, double seconds, const std::string& what) {
  const auto t0 = Steady::now();
  while (!f()) {
    if (Since(t0) > seconds) Die("timed out waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int64_t ShippedAtCentral(Caller& central) {
  auto k = MustGet<v1::KpiResponse>(central, "/v1/kpis");
  int64_t n = 0;
  for (const auto& row : k.by_channel()) {
    if (row.channel() == "bench") n += row.orders();
  }
  return n;
}

void Row(const std::string& what, const std::string& value, const std::string& note = "") {
  std::printf("%-46s %16s   %s\n", what.c_str(), value.c_str(), note.c_str());
}
void StepRow(const char* name, Step& s) {
  Row(absl::StrCat(name, " p50 / p99 (ms)"),
      absl::StrFormat("%.2f / %.2f", Percentile(s.ms, 50), Percentile(s.ms, 99)),
      absl::StrCat(s.ms.size(), " requests"));
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_orders: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--orders") o.orders = next();
    else if (a == "--capture-threads") o.capture_threads = next();
    else if (a == "--node-threads") o.node_threads = next();
    else if (a == "--quick") o.quick = true;
    else {
      std::fprintf(stderr, "usage: bench_orders [--orders N] [--capture-threads C] "
                           "[--node-threads K] [--quick]\n");
      return 2;
    }
  }
  if (o.quick) o.orders = 200;
  if (o.orders < 1 || o.capture_threads < 1 || o.node_threads < 1) {
    std::fprintf(stderr, "bench_orders: counts must be >= 1\n");
    return 2;
  }

  const std::string dir = MakeTempDir("depot-bench-orders-");
  std::printf("bench_orders: %u CPUs, temp dir %s, %d orders\n",
              std::thread::hardware_concurrency(), dir.c_str(), o.orders);
  const double raw_commits = bench::RawSingleCommits(dir + "/raw.db", o.quick ? 0.3 : 2);

  CentralProcess central(dir + "/central.db");
  if (auto s = central.Start(); !s.ok()) Die(s.ToString());
  Caller c(central.url());
  {
    std::string skus = "code,name\n", bins = "site,code,zone,walk_order\n";
    for (int i = 0; i < kSkus; ++i) absl::StrAppend(&skus, Sku(i), ",Bench item ", i, "\n");
    for (const char* site : {"S1", "S2"}) {
      for (int b = 0; b < kBins; ++b) absl::StrAppend(&bins, site, ",", Bin(b), ",A,", b * 10, "\n");
    }
    MustPost(c, "/v1/import/sites",
             "id,name,kind,region\nS1,East,warehouse,east\nS2,West,warehouse,west\n");
    MustPost(c, "/v1/import/skus", skus);
    MustPost(c, "/v1/import/bins", bins);
    MustPost(c, "/v1/import/channels",
             "id,name,site_priority,allow_split,review_above_cents\nbench,Bench,S1|S2,true,0\n");
  }
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  for (const char* site : {"S1", "S2"}) {
    nodes.push_back(std::make_unique<NodeProcess>(
        absl::StrCat(dir, "/", site, ".db"), site,
        std::vector<std::string>{"--central", central.grpc_address()}));
    if (auto s = nodes.back()->Start(); !s.ok()) Die(s.ToString());
  }
  for (auto& n : nodes) {
    Caller h(n->url());
    WaitUntil([&] { return MustGet<v1::BinsResponse>(h, "/v1/bins").bins_size() >= kBins &&
                           MustGet<v1::SkusResponse>(h, "/v1/skus?limit=1000").skus_size() == kSkus; },
              30, "master data at the nodes");
    for (int i = 0; i < kSkus; ++i) {
      v1::ReceiptRequest r;
      r.set_sku(Sku(i));
      r.set_bin(Bin(i % kBins));
      r.set_quantity(1'000'000);
      MustPost(h, "/v1/receipts", MessageToJson(r));
    }
  }
  for (const char* site : {"S1", "S2"}) {
    WaitUntil([&] {
      return MustGet<v1::NetworkStockResponse>(c, absl::StrCat("/v1/stock?site=", site))
                 .total_on_hand() == int64_t{kSkus} * 1'000'000;
    }, 30, "central's mirror of the receipts");
  }

  Step capture, wave, pick, ship;
  std::atomic<int> next_order{0};
  std::atomic<int64_t> shipped_at_nodes{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> waves{0}, empty_waves{0};
  const double cpu0[3] = {bench::ProcessCpuSeconds(central.pid()),
                          bench::ProcessCpuSeconds(nodes[0]->pid()),
                          bench::ProcessCpuSeconds(nodes[1]->pid())};
  const auto t0 = Steady::now();

  std::vector<std::thread> threads;
  for (int t = 0; t < o.capture_threads; ++t) {
    threads.emplace_back([&, t] {
      Caller cc(central.url());
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      for (;;) {
        const int n = next_order++;
        if (n >= o.orders) break;
        v1::CaptureOrderRequest r;
        r.set_channel("bench");
        r.set_external_id(absl::StrCat("BO-", n));
        r.set_service_level("standard");
        auto* a = r.mutable_ship_to();
        a->set_line1("1 Main St");
        a->set_city("Springfield");
        a->set_postal_code("12345");
        a->set_country("US");
        a->set_region(n % 2 == 0 ? "east" : "west");
        const int lines = 1 + static_cast<int>(rng() % 2);
        for (int l = 0; l < lines; ++l) {
          auto* line = r.add_lines();
          line->set_sku(Sku(static_cast<int>((n * 7 + l * 3) % kSkus)));
          line->set_quantity(1 + static_cast<int64_t>(rng() % 3));
          line->set_unit_price_cents(1999);
        }
        std::string answer;
        int status = cc.Send("POST", "/v1/orders", MessageToJson(r), &answer, &capture);
        if (status / 100 != 2) capture.Fail(absl::StrCat("capture -> ", status, " ", answer));
      }
    });
  }
  // Per node, as on a warehouse floor: one wave planner releases a wave of what is waiting every
  // few milliseconds, and pickers take one order each from the open waves: they scan every pick
  // task of it and then ship it at a pack-and-ship station (ShipRequest with the package).
  struct Work {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::vector<v1::PickTask>> orders;  // the pick tasks of one fulfilment each
  };
  std::vector<std::unique_ptr<Work>> work;
  for (auto& node : nodes) {
    work.push_back(std::make_unique<Work>());
    Work* wk = work.back().get();
    threads.emplace_back([&, wk, url = node->url()] {  // the wave planner
      Caller h(url);
      v1::CreateWaveRequest wr;
      wr.set_max_orders(200);
      const std::string wave_body = MessageToJson(wr);
      while (!stop) {
        std::string answer;
        int status = h.Send("POST", "/v1/waves", wave_body, &answer, &wave);
        if (status == 409) {  // nothing released right now: look again a little later
          ++empty_waves;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        v1::Wave w;
        if (status / 100 != 2 || !JsonToMessage(answer, &w).ok()) {
          wave.Fail(absl::StrCat("wave -> ", status, " ", answer));
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        ++waves;
        std::map<std::string, std::vector<v1::PickTask>> by_order;
        for (const auto& t : w.tasks()) by_order[t.fulfilment_id()].push_back(t);
        {
          std::lock_guard<std::mutex> l(wk->mu);
          for (auto& [fid, tasks] : by_order) wk->orders.push_back(std::move(tasks));
        }
        wk->cv.notify_all();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      wk->cv.notify_all();
    });
    for (int t = 0; t < o.node_threads; ++t) {
      threads.emplace_back([&, wk, url = node->url()] {  // a picker
        Caller h(url);
        for (;;) {
          std::vector<v1::PickTask> tasks;
          {
            std::unique_lock<std::mutex> l(wk->mu);
            wk->cv.wait_for(l, std::chrono::milliseconds(50),
                            [&] { return stop || !wk->orders.empty(); });
            if (wk->orders.empty()) {
              if (stop) return;
              continue;
            }
            tasks = std::move(wk->orders.front());
            wk->orders.pop_front();
          }
          std::string answer;
          for (const auto& task : tasks) {
            v1::PickRequest p;
            p.set_fulfilment_id(task.fulfilment_id());
            p.set_bin(task.bin());
            p.set_item(task.sku());
            p.set_lot(task.lot());
            p.set_quantity(task.quantity());
            int status = h.Send("POST", "/v1/picks", MessageToJson(p), &answer, &pick);
            if (status / 100 != 2) pick.Fail(absl::StrCat("pick -> ", status, " ", answer));
          }
          v1::ShipRequest sr;
          auto* pkg = sr.add_packages();
          pkg->set_weight_g(500);
          pkg->set_length_mm(200);
          pkg->set_width_mm(150);
          pkg->set_height_mm(100);
          sr.set_fulfilment_id(tasks.front().fulfilment_id());
          sr.set_carrier("UPS");
          sr.set_tracking("1Z" + tasks.front().fulfilment_id());
          int status = h.Send("POST", "/v1/shipments", MessageToJson(sr), &answer, &ship);
          if (status / 100 != 2) {
            ship.Fail(absl::StrCat("ship -> ", status, " ", answer));
          } else {
            ++shipped_at_nodes;
          }
        }
      });
    }
  }

  // Wait until central shows every order shipped (or the run is stuck).
  int64_t shipped = 0, last = -1;
  auto last_progress = Steady::now();
  double capture_done_s = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // KPIs scan every order
    shipped = ShippedAtCentral(c);
    if (capture_done_s == 0 && next_order >= o.orders) capture_done_s = Since(t0);
    if (shipped >= o.orders) break;
    if (shipped != last) {
      last = shipped;
      last_progress = Steady::now();
    } else if (Since(last_progress) > 30) {
      std::fprintf(stderr, "bench_orders: stuck at %lld of %d shipped at central\n",
                   static_cast<long long>(shipped), o.orders);
      break;
    }
  }
  const double seconds = Since(t0);
  stop = true;
  for (auto& t : threads) t.join();
  const double cpu[3] = {bench::ProcessCpuSeconds(central.pid()) - cpu0[0],
                         bench::ProcessCpuSeconds(nodes[0]->pid()) - cpu0[1],
                         bench::ProcessCpuSeconds(nodes[1]->pid()) - cpu0[2]};
  auto kpis = MustGet<v1::KpiResponse>(c, "/v1/kpis");

  std::printf("\n");
  Row("what", "value", "compared with");
  Row("orders shipped-at-central / s (capture->shipped)",
      absl::StrFormat("%.0f", static_cast<double>(shipped) / seconds),
      absl::StrFormat("target 1000; raw SQLite %.0f durable commits/s", raw_commits));
  Row("orders", absl::StrCat(shipped, " of ", o.orders), absl::StrFormat("in %.2f s", seconds));
  Row("captures / s", absl::StrFormat("%.0f", o.orders / capture_done_s),
      absl::StrCat(o.capture_threads, " capture clients"));
  StepRow("capture", capture);
  Row("waves (and empty wave requests)", absl::StrCat(waves.load(), " (", empty_waves.load(), ")"),
      absl::StrCat("1 planner + ", o.node_threads, " pickers per node, <= 200 orders a wave"));
  StepRow("wave", wave);
  StepRow("pick", pick);
  StepRow("pack+ship", ship);
  for (const auto& row : kpis.by_channel()) {
    if (row.channel() != "bench") continue;
    Row("cycle time capture->shipped p50 / p90 (s)",
        absl::StrFormat("%.2f / %.2f", row.cycle_time_p50_s(), row.cycle_time_p90_s()),
        "from central's KPIs");
  }
  Row("CPU s: central / S1 / S2", absl::StrFormat("%.1f / %.1f / %.1f", cpu[0], cpu[1], cpu[2]),
      absl::StrFormat("over %.1f s wall on %u CPUs", seconds, std::thread::hardware_concurrency()));
  std::printf("\n");

  bool ok = shipped >= o.orders;
  for (Step* s : {&capture, &wave, &pick, &ship}) {
    if (s->failed > 0) {
      std::fprintf(stderr, "bench_orders: %llu failed requests; first: %s\n",
                   static_cast<unsigned long long>(s->failed.load()), s->first_failure.c_str());
      ok = false;
    }
  }
  for (auto& n : nodes) n->Stop();
  central.Stop();
  if (ok) {
    RunProcess({"rm", "-rf", dir});
  } else {
    std::fprintf(stderr, "bench_orders: kept %s\n", dir.c_str());
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace depot::testing

int main(int argc, char** argv) { return depot::testing::Main(argc, argv); }
