#include "tests/bench/bench_util.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/sqlite_db.h"

namespace depot::bench {
namespace {

using Steady = std::chrono::steady_clock;

double Seconds(Steady::time_point since) {
  return std::chrono::duration<double>(Steady::now() - since).count();
}

double RawInserts(const std::string& path, double seconds, int rows_per_commit) {
  auto db = db::Open({.path = path, .durable = true});
  if (!db.ok()) return -1;
  (*db)->exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER)");
  SQLite::Statement ins(**db, "INSERT INTO t(sku, qty) VALUES (?, ?)");
  auto start = Steady::now();
  int64_t n = 0;
  while (Seconds(start) < seconds) {
    SQLite::Transaction tx(**db);
    for (int i = 0; i < rows_per_commit; ++i, ++n) {
      ins.bind(1, "SKU-1");
      ins.bind(2, n);
      ins.exec();
      ins.reset();
    }
    tx.commit();
  }
  return static_cast<double>(n) / Seconds(start);
}

}  // namespace

double RawSingleCommits(const std::string& path, double seconds) {
  return RawInserts(path, seconds, 1);
}
double RawBatchedRows(const std::string& path, double seconds) {
  return RawInserts(path, seconds, 1000);
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string stat = ss.str();
  size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state; 14, 15 utime, stime
    if (i == 14) utime = std::atof(f.c_str());
    if (i == 15) stime = std::atof(f.c_str());
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  size_t k = std::min(samples.size() - 1,
                      static_cast<size_t>(p / 100.0 * static_cast<double>(samples.size())));
  std::nth_element(samples.begin(), samples.begin() + static_cast<ptrdiff_t>(k), samples.end());
  return samples[k];
}

}  // namespace depot::bench
