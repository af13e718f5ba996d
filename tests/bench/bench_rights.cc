// bench_rights: what selling rights (docs/SYNC.md "Selling rights") cost.
//   1. A counter sale with and without selling rights: two node::Ledgers in-process on real files
//      (durable, synchronous=FULL), same data (1,000 SKUs, all their units local rights: a
//      central-managed store with store_share_percent 100), same run: one sale (1 unit of a
//      random SKU) per durable transaction (Apply), and group-committed in batches of 64 and 256
//      (ApplyBatch). The same transactions go to both ledgers, interleaved one by one, each
//      ledger timed on its own transactions. selling_rights = false is the naive baseline (ATP
//      only, no book). Next to raw SQLite durable single-row commits on the same disk in the
//      same run. Target: overhead < 10 %.
//   2. The round trip of a rights transfer on loopback: a real depot-central and a store
//      depot-node (durable SQLite, gRPC sync); repeatedly POST /v1/rights/request for 1 unit at
//      the node and poll its GET /v1/rights?sku= every 200 us until the answer (central's release)
//      is applied. Next to a raw gRPC round trip to central (grpc.health.v1.Health/Check), an HTTP
//      read and an HTTP durable write at the node, all in the same run.
// Usage: bench_rights [--quick] [--seconds S] [--iterations N] [--only sales|transfer] [--dir DIR]
// Exit status: 0 when every sale and transfer succeeded, 1 otherwise, 2 on usage.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
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
#include "depot/v1/rights.pb.h"
#include "node/ledger.h"
#include "tests/bench/bench_util.h"
#include "tests/support/central_support.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using Steady = std::chrono::steady_clock;
using bench::Percentile;

constexpr int kSkus = 1000;
constexpr const char* kNodeId = "BENCH";
constexpr int64_t kStockPerSku = 10'000'000;

struct Options {
  double seconds = 8;     // per ledger and measurement of part 1
  int rounds = 8;         // windows of a measurement (their spread is printed)
  int iterations = 200;   // rights transfers in part 2
  int baseline_calls = 1000;
  bool quick = false;
  std::string only;       // "sales" or "transfer": run just that part
  std::string dir;
};

double Since(Steady::time_point t0) {
  return std::chrono::duration<double>(Steady::now() - t0).count();
}
double MsSince(Steady::time_point t0) { return Since(t0) * 1000; }

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_rights: %s\n", what.c_str());
  std::exit(1);
}

std::string SkuCode(int i) { return absl::StrFormat("SKU-%06d", i); }

void Row(const std::string& what, const std::string& value, const std::string& note = "") {
  std::printf("%-66s %18s   %s\n", what.c_str(), value.c_str(), note.c_str());
}

// ---- 1. a counter sale with and without selling rights --------------------------------------

// A durable ledger with kSkus SKUs, one bin, central's policy "everything local" (it becomes
// central-managed, as a store under central is) and kStockPerSku units of every SKU.
std::unique_ptr<node::Ledger> OpenStore(const std::string& path, bool selling_rights) {
  auto opened = node::Ledger::Open(
      {.path = path, .node_id = kNodeId, .durable = true, .selling_rights = selling_rights});
  if (!opened.ok()) Die(absl::StrCat("open ", path, ": ", opened.status().ToString()));
  std::unique_ptr<node::Ledger> L = std::move(*opened);
  std::string csv = "code,name\n";
  for (int i = 0; i < kSkus; ++i) absl::StrAppend(&csv, SkuCode(i), ",Item ", i, "\n");
  if (auto n = L->ImportSkus(csv); !n.ok()) Die(n.status().ToString());
  if (auto n = L->ImportBins("code,walk_order\nB0,1\n"); !n.ok()) Die(n.status().ToString());
  v1::FeedEntry policy;
  policy.set_seq(1);
  auto* p = policy.mutable_rights_policy();
  p->set_site(kNodeId);
  p->set_store_share_percent(100);
  p->set_version(1);
  if (auto mark = L->ApplyFeed({policy}); !mark.ok()) Die(mark.status().ToString());
  RequestContext ctx{"bench", ""};
  std::vector<v1::Operation> ops(kSkus);
  std::vector<node::WriteItem> items(kSkus);
  for (int i = 0; i < kSkus; ++i) {
    auto* r = ops[i].mutable_receipt();
    r->set_sku(SkuCode(i));
    r->set_bin("B0");
    r->set_quantity(kStockPerSku);
    items[i] = {&ctx, &ops[i]};
  }
  for (auto& r : L->ApplyBatch(items)) {
    if (!r.ok()) Die(absl::StrCat("receipt: ", r.status().ToString()));
  }
  if (selling_rights) {
    auto rights = L->ListRights(SkuCode(0));
    if (!rights.ok() || rights->books_size() != 1 ||
        rights->books(0).local_rights() != kStockPerSku ||
        rights->books(0).central_granted() != 0) {
      Die("the rights ledger does not hold every unit as local rights");
    }
  }
  return L;
}

v1::Operation CounterSale(const std::string& sku) {
  v1::Operation op;
  op.mutable_local_order()->set_kind(v1::COUNTER_SALE);
  auto* l = op.mutable_local_order()->add_lines();
  l->set_sku(sku);
  l->set_quantity(1);
  l->set_unit_price_cents(999);
  return op;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// What one ledger did in a measurement: sales, wall time and CPU time (of this thread, which
// runs the ledger's writes and their fsyncs) spent in Apply/ApplyBatch.
struct Tally {
  int64_t sales = 0;
  double seconds = 0, cpu = 0;
  double Rate() const { return sales / seconds; }
};

// One durable transaction on L: Apply of ops[0] when there is one operation, else ApplyBatch.
void Step(node::Ledger& L, const RequestContext& ctx, const std::vector<v1::Operation>& ops,
          Tally* t) {
  const auto t0 = Steady::now();
  const double cpu0 = ThreadCpuSeconds();
  if (ops.size() == 1) {
    auto r = L.Apply(ctx, ops[0]);
    if (!r.ok()) Die(absl::StrCat("counter sale: ", r.status().ToString()));
  } else {
    std::vector<node::WriteItem> items;
    items.reserve(ops.size());
    for (const auto& op : ops) items.push_back({&ctx, &op});
    for (auto& r : L.ApplyBatch(items)) {
      if (!r.ok()) Die(absl::StrCat("counter sale in a batch: ", r.status().ToString()));
    }
  }
  t->cpu += ThreadCpuSeconds() - cpu0;
  t->seconds += Since(t0);
  t->sales += static_cast<int64_t>(ops.size());
}

void CostOfRights(const Options& o) {
  std::printf("1. a counter sale with and without selling rights (%d SKUs, durable, in-process)\n",
              kSkus);
  const double raw = bench::RawSingleCommits(o.dir + "/raw.db", o.quick ? 0.3 : 2);
  auto naive = OpenStore(o.dir + "/naive.db", /*selling_rights=*/false);
  auto rights = OpenStore(o.dir + "/rights.db", /*selling_rights=*/true);
  Row("what", "value", "compared with");
  Row("raw SQLite single-row durable commit", absl::StrFormat("%.0f commits/s", raw), "(baseline)");
  RequestContext ctx{"bench", ""};
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, kSkus - 1);
  int64_t rights_sales = 0;
  for (int batch : {1, 64, 256}) {
    // The same transactions (the same SKUs) on both ledgers, interleaved one by one and in
    // alternating order, so machine noise hits both alike; each ledger's time is the sum of its
    // own transactions. The overhead is the median over `rounds` windows (one slow fsync can
    // swing a window), printed with their range; CPU time per sale is the steadier figure.
    Tally total[2];
    std::vector<double> windows;
    std::vector<v1::Operation> ops(batch);
    const double window = 2 * o.seconds / o.rounds;
    for (int w = 0; w < o.rounds; ++w) {
      Tally in_window[2];
      const auto w0 = Steady::now();
      for (int64_t i = 0; Since(w0) < window; ++i) {
        for (auto& op : ops) op = CounterSale(SkuCode(pick(rng)));
        for (int k = 0; k < 2; ++k) {
          const int which = static_cast<int>((i + k) % 2);  // 0 naive, 1 rights
          Step(which == 0 ? *naive : *rights, ctx, ops, &in_window[which]);
        }
      }
      for (int k = 0; k < 2; ++k) {
        total[k].sales += in_window[k].sales;
        total[k].seconds += in_window[k].seconds;
        total[k].cpu += in_window[k].cpu;
      }
      windows.push_back(100 * (1 - in_window[1].Rate() / in_window[0].Rate()));
    }
    rights_sales += total[1].sales;
    std::sort(windows.begin(), windows.end());
    const double median = windows[windows.size() / 2];
    const double cpu_us[2] = {1e6 * total[0].cpu / total[0].sales,
                              1e6 * total[1].cpu / total[1].sales};
    const std::string how =
        batch == 1 ? "one per durable transaction" : absl::StrCat("batches of ", batch);
    Row(absl::StrCat("counter sales, ", how, ", no rights"),
        absl::StrFormat("%.0f sales/s", total[0].Rate()),
        absl::StrFormat("%s; CPU %.0f us/sale",
                        batch == 1
                            ? absl::StrFormat("%.0f%% of raw commit", 100 * total[0].Rate() / raw)
                            : absl::StrFormat("%.0f durable commits/s", total[0].Rate() / batch),
                        cpu_us[0]));
    Row(absl::StrCat("counter sales, ", how, ", selling rights"),
        absl::StrFormat("%.0f sales/s", total[1].Rate()),
        absl::StrFormat("overhead %.1f%% (target < 10%%; median of %d windows, %.1f..%.1f%%); "
                        "CPU %.0f us/sale (%+.1f%%)",
                        median, o.rounds, windows.front(), windows.back(),
                        cpu_us[1], 100 * (cpu_us[1] / cpu_us[0] - 1)));
  }
  // The rights ledger sold only against local rights, and its books hold their identities.
  int64_t sold = 0;
  auto books = rights->ListRights("");
  if (!books.ok()) Die(books.status().ToString());
  for (const auto& b : books->books()) sold += b.local_sold_total();
  if (sold != rights_sales) {
    Die(absl::StrCat("the rights ledger counts ", sold, " units sold, the bench ", rights_sales));
  }
  auto v = rights->Verify();
  if (!v.ok() || !v->ok()) Die("the rights ledger does not verify");
  std::printf("\n");
}

// ---- 2. the round trip of a rights transfer ----------------------------------------------

// One keep-alive HTTP client for one server.
class Caller {
 public:
  explicit Caller(std::string base) : base_(std::move(base)), client_(http::NewCurlClient()) {}
  http::ClientResponse Send(const char* method, const std::string& path,
                            const std::string& body = "") {
    auto r = client_->Send(method, base_ + path, body, {{"X-Depot-Operator", "bench"}});
    if (!r.ok()) Die(absl::StrCat(method, " ", path, ": ", r.status().ToString()));
    return *r;
  }
  void MustPost(const std::string& path, const std::string& body) {
    auto r = Send("POST", path, body);
    if (r.status / 100 != 2) Die(absl::StrCat("POST ", path, " -> ", r.status, " ", r.body));
  }
  template <typename M>
  M MustGet(const std::string& path) {
    auto r = Send("GET", path);
    if (r.status != 200) Die(absl::StrCat("GET ", path, " -> ", r.status, " ", r.body));
    M m;
    if (!JsonToMessage(r.body, &m).ok()) Die(absl::StrCat("GET ", path, ": cannot parse ", r.body));
    return m;
  }

 private:
  std::string base_;
  std::unique_ptr<http::Client> client_;
};

void WaitUntil(const std::function<bool()>& f, double seconds, const std::string& what) {
  const auto t0 = Steady::now();
  while (!f()) {
    if (Since(t0) > seconds) Die("timed out waiting for " + what);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A blocking grpc.health.v1.Health/Check on `stub`; false when it failed.
bool HealthCheck(grpc::GenericStub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = std::move(s);
                   done = true;
                   cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return status.ok();
}

void LatencyRow(const std::string& what, std::vector<double>& ms, const std::string& note) {
  Row(absl::StrCat(what, " p50 / p99 (ms)"),
      absl::StrFormat("%.2f / %.2f", Percentile(ms, 50), Percentile(ms, 99)),
      absl::StrCat(ms.size(), " samples", note.empty() ? "" : "; ", note));
}

v1::RightsBook Book(Caller& node, const std::string& sku) {
  auto r = node.MustGet<v1::NodeRightsResponse>("/v1/rights?sku=" + sku);
  if (r.books_size() != 1) Die("the node has no rights book for " + sku);
  return r.books(0);
}

void TransferRoundTrip(const Options& o) {
  std::printf("2. the round trip of a rights transfer (depot-central + a store depot-node, "
              "loopback, durable)\n");
  const std::string sku = "R-0001";
  CentralProcess central(o.dir + "/central.db");
  if (auto s = central.Start(); !s.ok()) Die(s.ToString());
  Caller c(central.url());
  c.MustPost("/v1/import/sites", "id,name,kind,region\nS1,Bench store,store,north\n");
  c.MustPost("/v1/import/skus", absl::StrCat("code,name\n", sku, ",Bench item\n"));
  c.MustPost("/v1/import/bins", "site,code,zone,walk_order\nS1,B0,A,10\n");
  NodeProcess node(o.dir + "/S1.db", "S1", {"--central", central.grpc_address()});
  if (auto s = node.Start(); !s.ok()) Die(s.ToString());
  Caller h(node.url());
  WaitUntil([&] { return h.MustGet<v1::BinsResponse>("/v1/bins").bins_size() == 1 &&
                         h.MustGet<v1::SkusResponse>("/v1/skus").skus_size() == 1; },
            30, "master data at the node");
  {
    v1::ReceiptRequest r;
    r.set_sku(sku);
    r.set_bin("B0");
    r.set_quantity(1'000'000);
    h.MustPost("/v1/receipts", MessageToJson(r));
  }
  // The store's default policy (30 % local) grants the rest to central.
  const std::string central_row = absl::StrCat("/v1/rights?site=S1&sku=", sku);
  WaitUntil([&] {
    auto rows = c.MustGet<v1::ListRightsResponse>(central_row);
    return rows.rights_size() == 1 && rows.rights(0).central_rights() > 0 &&
           rows.rights(0).central_rights() == Book(h, sku).central_granted();
  }, 30, "central's rights");

  // Request -> answer applied, measured at the node's API.
  v1::RightsRequest ask;
  ask.set_sku(sku);
  ask.set_units(1);
  ask.set_reason("bench");
  const std::string ask_body = MessageToJson(ask);
  const std::string book_path = "/v1/rights?sku=" + sku;
  std::vector<double> transfer_ms;
  uint64_t polls = 0;
  const int warmup = o.quick ? 2 : 10;
  int64_t local = Book(h, sku).local_rights();
  for (int i = 0; i < warmup + o.iterations; ++i) {
    const auto t0 = Steady::now();
    auto r = h.Send("POST", "/v1/rights/request", ask_body);
    if (r.status != 201) Die(absl::StrCat("POST /v1/rights/request -> ", r.status, " ", r.body));
    for (;;) {
      auto g = h.Send("GET", book_path);
      ++polls;
      v1::NodeRightsResponse now;
      if (g.status != 200 || !JsonToMessage(g.body, &now).ok() || now.books_size() != 1) {
        Die(absl::StrCat("GET ", book_path, " -> ", g.status, " ", g.body));
      }
      const v1::RightsBook& b = now.books(0);
      if (!b.refill_pending() && b.local_rights() > local) {
        local = b.local_rights();
        break;
      }
      if (Since(t0) > 10) Die("no answer from central within 10 s: " + g.body);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (i >= warmup) transfer_ms.push_back(MsSince(t0));
  }

  // Baselines on the same processes: a raw gRPC round trip to central, an HTTP read and an HTTP
  // durable write at the node.
  std::vector<double> grpc_ms, read_ms, write_ms;
  {
    auto channel = grpc::CreateChannel(central.grpc_address(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    for (int i = 0; i < o.baseline_calls + 10; ++i) {
      const auto t0 = Steady::now();
      if (!HealthCheck(stub)) Die("gRPC health check failed");
      if (i >= 10) grpc_ms.push_back(MsSince(t0));
    }
  }
  for (int i = 0; i < o.baseline_calls + 10; ++i) {
    const auto t0 = Steady::now();
    auto g = h.Send("GET", book_path);
    if (g.status != 200) Die("GET " + book_path);
    if (i >= 10) read_ms.push_back(MsSince(t0));
  }
  {
    v1::ReceiptRequest r;
    r.set_sku(sku);
    r.set_bin("B0");
    r.set_quantity(1);
    const std::string body = MessageToJson(r);
    for (int i = 0; i < o.iterations + 10; ++i) {
      const auto t0 = Steady::now();
      auto w = h.Send("POST", "/v1/receipts", body);
      if (w.status != 201) Die(absl::StrCat("POST /v1/receipts -> ", w.status, " ", w.body));
      if (i >= 10) write_ms.push_back(MsSince(t0));
    }
  }

  const v1::RightsBook b = Book(h, sku);
  Row("what", "value", "compared with");
  LatencyRow("rights request -> central's answer applied", transfer_ms,
             absl::StrFormat("%.1f polls each; %lld units released", 
                             static_cast<double>(polls) / (warmup + o.iterations),
                             static_cast<long long>(b.released_total())));
  LatencyRow("raw gRPC round trip to central (health check)", grpc_ms, "baseline");
  LatencyRow("HTTP read at the node (GET /v1/rights?sku=)", read_ms, "baseline");
  LatencyRow("HTTP durable write at the node (POST /v1/receipts)", write_ms, "baseline");
  if (b.released_total() < warmup + o.iterations) Die("fewer releases than requests answered");
  node.Stop();
  central.Stop();
  std::printf("\n");
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_rights: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
      o.seconds = 0.4;
      o.rounds = 2;
      o.iterations = 10;
      o.baseline_calls = 50;
    } else if (a == "--seconds") {
      o.seconds = std::atof(value().c_str());
    } else if (a == "--iterations") {
      o.iterations = std::atoi(value().c_str());
    } else if (a == "--dir") {
      o.dir = value();
    } else if (a == "--only") {
      o.only = value();
      if (o.only != "sales" && o.only != "transfer") {
        std::fprintf(stderr, "bench_rights: --only sales or --only transfer\n");
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "usage: bench_rights [--quick] [--seconds S] [--iterations N] "
                   "[--only sales|transfer] [--dir DIR]\n");
      return 2;
    }
  }
  if (o.seconds <= 0 || o.iterations < 1) {
    std::fprintf(stderr, "bench_rights: --seconds and --iterations must be positive\n");
    return 2;
  }
  const bool own_dir = o.dir.empty();
  if (own_dir) o.dir = MakeTempDir("depot-bench-rights-");
  std::printf("bench_rights: %u CPUs, dir %s, %.1f s per sales measurement, %d transfers\n\n",
              std::thread::hardware_concurrency(), o.dir.c_str(), o.seconds, o.iterations);
  if (o.only != "transfer") CostOfRights(o);
  if (o.only != "sales") TransferRoundTrip(o);
  if (own_dir) std::filesystem::remove_all(o.dir);
  return 0;
}

}  // namespace
}  // namespace depot::testing

int main(int argc, char** argv) { return depot::testing::Main(argc, argv); }
