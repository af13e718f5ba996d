// bench_http: a real depot-node (durable: synchronous=FULL) over loopback HTTP, next to raw
// SQLite on the same disk in the same run:
//   1. baseline: raw SQLite single-row durable INSERTs (WAL, synchronous=FULL, one per txn);
//   2. one keep-alive connection, sequential receipts, then sequential reserves (p50/p99);
//   3. group commit: C keep-alive connections posting receipts as fast as they can for D
//      seconds; ops/s, p50/p99 and the node's group-commit counters (ops per transaction).
// The load generator is one thread running Asio with raw HTTP/1.1 (prebuilt request bytes; only
// the status line and Content-Length are parsed), because it shares the machine with the node.
//
// Usage: bench_http [--seconds D] [--connections C] [--quick]
// Exit status: 0 when every phase completed requests and none failed, 1 otherwise, 2 on usage.
#include <SQLiteCpp/SQLiteCpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/http_client.h"
#include "common/json.h"
#include "depot/v1/node_api.pb.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using Clock = std::chrono::steady_clock;
using asio::ip::tcp;

constexpr const char* kSku = "BENCH-1";
constexpr const char* kBin = "BIN-1";

struct Options {
  double seconds = 5;          // group-commit phase
  int connections = 64;        // group-commit phase
  double single_seconds = 3;   // each sequential phase
  double baseline_seconds = 3; // raw SQLite
  bool quick = false;
};

double SecondsOf(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU seconds (user + system) used so far by this process.
double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds (user + system) used so far by process pid, from /proc; -1 when unknown.
double ProcessCpuSeconds(pid_t pid) {
  auto stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return -1;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  size_t close_paren = stat->rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::vector<std::string> fields;
  size_t pos = close_paren + 2;
  while (pos < stat->size()) {
    size_t sp = stat->find(' ', pos);
    if (sp == std::string::npos) sp = stat->size();
    fields.push_back(stat->substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (fields.size() < 13) return -1;  // fields[0] is field 3 (state)
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) / ticks;
}

// What one measured phase did.
struct PhaseResult {
  uint64_t ok = 0;       // 2xx answers (or committed inserts)
  uint64_t failed = 0;   // other HTTP statuses
  uint64_t errors = 0;   // transport errors / malformed answers
  double seconds = 0;    // from the first request to the last answer
  std::vector<uint32_t> latency_us;
  std::string first_failure;

  double Rate() const { return seconds > 0 ? static_cast<double>(ok) / seconds : 0; }
  // Latency percentile in milliseconds (p in 0..100).
  double PercentileMs(double p) {
    if (latency_us.empty()) return 0;
    size_t k = std::min(latency_us.size() - 1,
                        static_cast<size_t>(p / 100.0 * static_cast<double>(latency_us.size())));
    std::nth_element(latency_us.begin(), latency_us.begin() + static_cast<ptrdiff_t>(k),
                     latency_us.end());
    return latency_us[k] / 1000.0;
  }
  bool Healthy() const { return ok > 0 && failed == 0 && errors == 0; }
};

// ---------------------------------------------------------------------------------------------
// Baseline: raw SQLite.

PhaseResult RawSqliteInserts(const std::string& path, double seconds) {
  PhaseResult r;
  try {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=FULL");
    db.exec(
        "CREATE TABLE IF NOT EXISTS movements(seq INTEGER PRIMARY KEY, sku TEXT NOT NULL, "
        "bin TEXT NOT NULL, quantity INTEGER NOT NULL, hlc INTEGER NOT NULL)");
    const std::string mode = db.execAndGet("PRAGMA journal_mode").getString();
    const int sync = db.execAndGet("PRAGMA synchronous").getInt();
    if (mode != "wal" || sync != 2) {
      r.errors = 1;
      r.first_failure = absl::StrCat("baseline pragmas not applied: journal_mode=", mode,
                                     " synchronous=", sync);
      return r;
    }
    SQLite::Statement ins(db, "INSERT INTO movements(sku, bin, quantity, hlc) VALUES (?, ?, ?, ?)");
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
    for (int64_t i = 0;; ++i) {
      const auto t0 = Clock::now();
      if (t0 >= deadline) break;
      db.exec("BEGIN IMMEDIATE");
      ins.bind(1, kSku);
      ins.bind(2, kBin);
      ins.bind(3, static_cast<int64_t>(1));
      ins.bind(4, i);
      ins.exec();
      ins.reset();
      db.exec("COMMIT");
      r.latency_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
      ++r.ok;
    }
    r.seconds = SecondsOf(Clock::now() - start);
  } catch (const std::exception& e) {
    ++r.errors;
    r.first_failure = e.what();
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Load generator.

// Request bytes with slots where a 10-digit counter is written before each send.
struct RequestTemplate {
  std::string bytes;
  std::vector<size_t> slots;
};

constexpr std::string_view kSlot = "##########";

// A keep-alive POST of `body` (its "##########" are counter slots) to path.
RequestTemplate MakeRequest(const std::string& path, const std::string& body) {
  RequestTemplate t;
  t.bytes = absl::StrCat("POST ", path,
                         " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Depot-Operator: bench\r\n"
                         "Content-Type: application/json\r\nContent-Length: ",
                         body.size(), "\r\n\r\n", body);
  for (size_t pos = t.bytes.find(kSlot); pos != std::string::npos;
       pos = t.bytes.find(kSlot, pos + kSlot.size())) {
    t.slots.push_back(pos);
  }
  return t;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// Size of the complete response at the front of data: 0 while incomplete, -1 when malformed.
// Only the status line and Content-Length are read.
long CompleteResponse(std::string_view data, int* status) {
  size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  if (data.size() < 12 || data.substr(0, 5) != "HTTP/") return -1;
  size_t sp = data.find(' ');
  if (sp == std::string_view::npos || sp + 4 > end) return -1;
  *status = (data[sp + 1] - '0') * 100 + (data[sp + 2] - '0') * 10 + (data[sp + 3] - '0');
  long length = -1;
  size_t line = data.find("\r\n") + 2;
  while (line < end) {
    size_t eol = data.find("\r\n", line);
    std::string_view header = data.substr(line, eol - line);
    size_t colon = header.find(':');
    if (colon != std::string_view::npos && EqualsIgnoreCase(header.substr(0, colon),
                                                            "content-length")) {
      length = std::strtol(std::string(header.substr(colon + 1)).c_str(), nullptr, 10);
    }
    line = eol + 2;
  }
  if (length < 0) return -1;  // the node always sends Content-Length
  const size_t total = end + 4 + static_cast<size_t>(length);
  return data.size() >= total ? static_cast<long>(total) : 0;
}

// Single-threaded: every connection sends one request, waits for its answer, sends the next,
// until the deadline; then the phase ends when the last answer arrived.
class LoadGenerator {
 public:
  LoadGenerator(uint16_t port, std::vector<RequestTemplate> requests, double seconds)
      : port_(port), duration_(std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(seconds))) {
    for (auto& t : requests) {
      auto c = std::make_unique<Conn>(io_);
      c->request = std::move(t);
      conns_.push_back(std::move(c));
    }
  }

  PhaseResult Run() {
    const tcp::endpoint ep(asio::ip::address_v4::loopback(), port_);
    for (auto& c : conns_) {
      asio::error_code ec;
      c->socket.connect(ep, ec);
      if (!ec) c->socket.set_option(tcp::no_delay(true), ec);
      if (ec) {
        Fail(*c, absl::StrCat("connect: ", ec.message()));
        continue;
      }
      c->open = true;
    }
    result_.latency_us.reserve(1 << 20);
    start_ = Clock::now();
    deadline_ = start_ + duration_;
    for (auto& c : conns_) {
      if (c->open) Issue(*c);
    }
    io_.run();
    result_.seconds = SecondsOf(last_answer_ - start_);
    return std::move(result_);
  }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    RequestTemplate request;
    uint64_t counter = 0;
    std::vector<char> buf = std::vector<char>(16 * 1024);
    size_t have = 0;
    Clock::time_point sent_at;
    bool open = false;
  };

  void Fail(Conn& c, std::string what) {
    ++result_.errors;
    if (result_.first_failure.empty()) result_.first_failure = std::move(what);
    asio::error_code ignored;
    c.socket.close(ignored);
    c.open = false;
  }

  void Issue(Conn& c) {
    const auto now = Clock::now();
    if (now >= deadline_) {  // done: close so the server sees a clean EOF
      asio::error_code ignored;
      c.socket.shutdown(tcp::socket::shutdown_both, ignored);
      c.socket.close(ignored);
      c.open = false;
      return;
    }
    ++c.counter;
    for (size_t slot : c.request.slots) {
      uint64_t v = c.counter;
      for (size_t i = kSlot.size(); i-- > 0;) {
        c.request.bytes[slot + i] = static_cast<char>('0' + v % 10);
        v /= 10;
      }
    }
    c.sent_at = now;
    asio::async_write(c.socket, asio::buffer(c.request.bytes),
                      [this, &c](const asio::error_code& ec, size_t) {
                        if (ec) return Fail(c, absl::StrCat("write: ", ec.message()));
                        Read(c);
                      });
  }

  void Read(Conn& c) {
    if (c.have == c.buf.size()) c.buf.resize(c.buf.size() * 2);
    c.socket.async_read_some(asio::buffer(c.buf.data() + c.have, c.buf.size() - c.have),
                             [this, &c](const asio::error_code& ec, size_t n) {
                               if (ec) return Fail(c, absl::StrCat("read: ", ec.message()));
                               c.have += n;
                               OnData(c);
                             });
  }

  void OnData(Conn& c) {
    int status = 0;
    long n = CompleteResponse(std::string_view(c.buf.data(), c.have), &status);
    if (n == 0) return Read(c);
    if (n < 0) return Fail(c, "malformed response: " + std::string(c.buf.data(), c.have));
    const auto now = Clock::now();
    last_answer_ = std::max(last_answer_, now);
    if (status >= 200 && status < 300) {
      ++result_.ok;
      result_.latency_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - c.sent_at).count()));
    } else {
      ++result_.failed;
      if (result_.first_failure.empty()) {
        result_.first_failure = std::string(c.buf.data(), static_cast<size_t>(n));
      }
    }
    std::memmove(c.buf.data(), c.buf.data() + n, c.have - static_cast<size_t>(n));
    c.have -= static_cast<size_t>(n);
    Issue(c);
  }

  asio::io_context io_{1};
  const uint16_t port_;
  const Clock::duration duration_;
  std::vector<std::unique_ptr<Conn>> conns_;
  Clock::time_point start_, deadline_, last_answer_;
  PhaseResult result_;
};

// Receipts of one unit, each with a unique request_id: "<tag>-c<conn>-<counter>".
std::vector<RequestTemplate> Receipts(const std::string& tag, int connections) {
  std::vector<RequestTemplate> out;
  for (int c = 0; c < connections; ++c) {
    out.push_back(MakeRequest(
        "/v1/receipts",
        absl::StrFormat(R"({"sku":"%s","bin":"%s","quantity":1,"request_id":"%s-c%04d-%s"})",
                        kSku, kBin, tag, c, kSlot)));
  }
  return out;
}

// Reservations of one unit, each for a new reference and with a unique request_id.
std::vector<RequestTemplate> Reserves(const std::string& tag, int connections) {
  std::vector<RequestTemplate> out;
  for (int c = 0; c < connections; ++c) {
    out.push_back(MakeRequest(
        "/v1/reservations",
        absl::StrFormat(
            R"({"sku":"%s","reference":"SO-%s-c%04d-%s","quantity":1,"request_id":"%s-c%04d-%s"})",
            kSku, tag, c, kSlot, tag, c, kSlot)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_http: %s\n", what.c_str());
  std::exit(1);
}

http::ClientResponse MustSend(http::Client& client, std::string_view method,
                              const std::string& url, const std::string& body = "",
                              const std::string& content_type = "application/json") {
  auto r = client.Send(method, url, body,
                       {{"X-Depot-Operator", "bench"}, {"Content-Type", content_type}});
  if (!r.ok()) Die(absl::StrCat(std::string(method), " ", url, ": ", r.status().ToString()));
  if (r->status < 200 || r->status >= 300) {
    Die(absl::StrCat(std::string(method), " ", url, ": HTTP ", r->status, " ", r->body));
  }
  return *r;
}

struct CommitCounters {
  double batches = 0, operations = 0;
};
CommitCounters ReadCounters(http::Client& client, const std::string& base) {
  auto r = MustSend(client, "GET", base + "/metrics");
  CommitCounters c;
  c.batches = MetricValue(r.body, "depot_group_commit_batches").value_or(-1);
  c.operations = MetricValue(r.body, "depot_group_commit_operations").value_or(-1);
  if (c.batches < 0 || c.operations < 0) Die("group commit counters missing from /metrics");
  return c;
}

void Row(const std::string& what, const std::string& value, const std::string& baseline = "") {
  std::printf("%-50s %18s   %s\n", what.c_str(), value.c_str(), baseline.c_str());
}
std::string Num(double v) { return absl::StrFormat("%.0f", v); }
std::string Latency(PhaseResult& r) {
  return absl::StrFormat("%.2f / %.2f ms", r.PercentileMs(50), r.PercentileMs(99));
}
void Report(const char* phase, const PhaseResult& r, bool* healthy) {
  if (!r.Healthy()) {
    *healthy = false;
    std::fprintf(stderr, "bench_http: %s: %llu ok, %llu failed, %llu errors; first: %s\n", phase,
                 static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.failed),
                 static_cast<unsigned long long>(r.errors), r.first_failure.c_str());
  }
}

int Main(int argc, char** argv) {
  Options o;
  bool seconds_set = false, connections_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_http: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--seconds") {
      o.seconds = std::atof(value());
      seconds_set = true;
    } else if (a == "--connections") {
      o.connections = std::atoi(value());
      connections_set = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_http [--seconds D] [--connections C] [--quick]\n"
                   "  --seconds D      group-commit phase length (default 5)\n"
                   "  --connections C  concurrent keep-alive connections (default 64)\n"
                   "  --quick          tiny run for a smoke test\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.quick) {
    if (!seconds_set) o.seconds = 0.5;
    if (!connections_set) o.connections = 8;
    o.single_seconds = 0.3;
    o.baseline_seconds = 0.3;
  }
  if (o.seconds <= 0 || o.connections < 1 || o.connections > 4096) {
    std::fprintf(stderr, "bench_http: need --seconds > 0 and 1 <= --connections <= 4096\n");
    return 2;
  }

  const std::string dir = MakeTempDir("depot-bench-http-");
  std::printf("bench_http: %u CPUs, temp dir %s\n", std::thread::hardware_concurrency(),
              dir.c_str());

  // 1. Baseline, before the node runs, so it has the disk and CPUs to itself.
  PhaseResult raw = RawSqliteInserts(dir + "/baseline.db", o.baseline_seconds);

  // The node: durable (synchronous=full is also the default).
  NodeProcess node(dir + "/node.db", "bench-node", {"--sync", "full"});
  if (auto s = node.Start(); !s.ok()) Die(s.ToString());
  const std::string base = node.url();
  auto client = http::NewCurlClient(std::chrono::seconds(300));
  MustSend(*client, "POST", base + "/v1/import/skus",
           absl::StrCat("code,name,tracking\n", kSku, ",Bench item,none\n"), "text/csv");
  MustSend(*client, "POST", base + "/v1/import/bins",
           absl::StrCat("code,zone,walk_order\n", kBin, ",A,1\n"), "text/csv");
  // Enough stock that no reservation is ever refused.
  MustSend(*client, "POST", base + "/v1/receipts",
           absl::StrFormat(R"({"sku":"%s","bin":"%s","quantity":1000000000})", kSku, kBin));

  // 2. One connection, sequential.
  PhaseResult seq_receipts = LoadGenerator(node.port(), Receipts("sr", 1), o.single_seconds).Run();
  PhaseResult seq_reserves = LoadGenerator(node.port(), Reserves("sv", 1), o.single_seconds).Run();

  // 3. Group commit: many connections.
  const CommitCounters before = ReadCounters(*client, base);
  const double client_cpu0 = SelfCpuSeconds(), node_cpu0 = ProcessCpuSeconds(node.pid());
  PhaseResult group =
      LoadGenerator(node.port(), Receipts("gc", o.connections), o.seconds).Run();
  const double client_cpu = SelfCpuSeconds() - client_cpu0;
  const double node_cpu = ProcessCpuSeconds(node.pid()) - node_cpu0;
  const CommitCounters after = ReadCounters(*client, base);
  const double batches = after.batches - before.batches;
  const double operations = after.operations - before.operations;

  // Sanity: the ledger still verifies.
  depot::v1::VerifyResponse verify;
  {
    auto r = MustSend(*client, "POST", base + "/v1/verify");
    if (!JsonToMessage(r.body, &verify).ok()) Die("unparsable verify answer: " + r.body);
  }
  const int stop_status = node.Stop();

  std::printf("\n");
  Row("what", "value", "baseline");
  Row(std::string(50, '-'), std::string(18, '-'), std::string(28, '-'));
  Row(absl::StrFormat("raw SQLite durable INSERTs/s (1 row/txn, %.1fs)", raw.seconds),
      Num(raw.Rate()), "(WAL, synchronous=FULL)");
  Row("  commit latency p50 / p99", Latency(raw));
  Row(absl::StrFormat("HTTP receipts/s, 1 connection (%.1fs)", seq_receipts.seconds),
      Num(seq_receipts.Rate()), absl::StrCat("raw SQLite ", Num(raw.Rate()), "/s"));
  Row("  latency p50 / p99", Latency(seq_receipts));
  Row(absl::StrFormat("HTTP reserves/s, 1 connection (%.1fs)", seq_reserves.seconds),
      Num(seq_reserves.Rate()), absl::StrCat("raw SQLite ", Num(raw.Rate()), "/s"));
  Row("  latency p50 / p99", Latency(seq_reserves));
  Row(absl::StrFormat("HTTP receipts/s, %d connections (%.1fs)", o.connections, group.seconds),
      Num(group.Rate()), "target 20,000 durable ops/s");
  Row("  latency p50 / p99", Latency(group));
  Row("  transactions (group commit batches)", Num(batches));
  Row("  operations committed", Num(operations),
      absl::StrCat(group.ok, " acknowledged"));
  Row("  avg operations per transaction",
      batches > 0 ? absl::StrFormat("%.1f", operations / batches) : "-", "1 without group commit");
  if (group.seconds > 0 && node_cpu0 >= 0) {
    Row("  CPU: depot-node / load generator",
        absl::StrFormat("%.0f%% / %.0f%%", 100 * node_cpu / group.seconds,
                        100 * client_cpu / group.seconds),
        absl::StrFormat("of one core; %u cores in all", std::thread::hardware_concurrency()));
  }
  Row("  speed-up over raw SQLite single-row commits",
      raw.Rate() > 0 ? absl::StrFormat("%.1fx", group.Rate() / raw.Rate()) : "-");
  Row("ledger verify after the run",
      verify.ok() ? absl::StrCat("ok, ", verify.movements()) : "DIFFERENCES", "movements");
  std::printf("\n");

  bool healthy = true;
  Report("raw SQLite", raw, &healthy);
  Report("sequential receipts", seq_receipts, &healthy);
  Report("sequential reserves", seq_reserves, &healthy);
  Report("group commit", group, &healthy);
  if (!verify.ok()) {
    healthy = false;
    std::fprintf(stderr, "bench_http: verify found %d differences\n", verify.differences_size());
  }
  if (stop_status != 0) {
    healthy = false;
    std::fprintf(stderr, "bench_http: depot-node exited with %d on SIGTERM\n", stop_status);
  }
  if (healthy) {
    const std::string& rm = dir;
    for (const char* f : {"/baseline.db", "/baseline.db-wal", "/baseline.db-shm", "/node.db",
                          "/node.db-wal", "/node.db-shm", "/node.db.port", "/node.db.log"}) {
      std::remove((rm + f).c_str());
    }
    ::rmdir(dir.c_str());
  } else {
    std::fprintf(stderr, "bench_http: kept %s (node log: %s)\n", dir.c_str(),
                 node.log_path().c_str());
  }
  return healthy ? 0 : 1;
}

}  // namespace
}  // namespace depot::testing

int main(int argc, char** argv) { return depot::testing::Main(argc, argv); }
