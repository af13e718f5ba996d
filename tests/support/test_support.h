// Support code for integration tests and benchmarks: temporary directories, running child
// processes with captured output, a real depot-node process on an ephemeral port, and sample
// master data.
//
// The absolute paths of the binaries under test come from compile definitions set by
// tests/CMakeLists.txt (DEPOT_NODE_BIN, DEPOT_CTL_BIN, DEPOT_SOURCE_DIR).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace depot::testing {

// Absolute paths of the depot-node and depotctl binaries and of the source tree.
inline constexpr const char* kNodeBin = DEPOT_NODE_BIN;
inline constexpr const char* kCtlBin = DEPOT_CTL_BIN;
inline constexpr const char* kSourceDir = DEPOT_SOURCE_DIR;

// Creates a new, empty, uniquely named directory under $TMPDIR (or /tmp) whose name starts with
// `prefix`, and returns its absolute path. The directory is not removed automatically. Aborts
// the process when the directory cannot be created (tests cannot proceed without it).
std::string MakeTempDir(const std::string& prefix);

// Writes `content` to `path` (truncating). Returns an error naming the path on failure.
absl::Status WriteFile(const std::string& path, std::string_view content);
// Reads a whole file; NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

struct ProcessResult {
  // The exit status when the child exited normally; 128 + signal number when a signal killed it
  // (the shell's convention); 127 when the program could not be started (then `err` says why);
  // 124 when it ran past the timeout and was killed.
  int exit_code = -1;
  std::string out;  // everything the child wrote to stdout
  std::string err;  // everything the child wrote to stderr
};

// Runs argv[0] (looked up in PATH when it has no '/') with the given arguments, stdin from
// /dev/null, and waits for it to exit. stdout and stderr are captured through temporary files,
// so a child writing a lot can never deadlock against us. extra_env entries are added to (or
// replace) the inherited environment. A child still running after `timeout` is SIGKILLed.
// Thread-safe.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& extra_env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The mechanics shared by NodeProcess and CentralProcess: a server child process whose stdout
// and stderr are appended to "<db>.log", that reports its bound port(s) in "<db>.port", and that
// is ready when GET /healthz answers 200. The child gets PR_SET_PDEATHSIG(SIGKILL), so it dies
// with the thread that started it: start it from a thread that lives as long as it should.
// Not thread-safe: use one object from one thread.
class ServerProcess {
 public:
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& db_path() const { return db_path_; }
  const std::string& log_path() const { return log_path_; }

  // Sends sig and reaps the child: blocks until it exits, so sig must be one that ends it
  // (SIGKILL, SIGTERM, ...). No-op when not running.
  void Kill(int sig = SIGKILL);
  // SIGTERM, then waits up to `timeout` for a clean exit (SIGKILL after that). Returns the
  // exit status, 128 + signal when killed by a signal, or -1 when it was not running.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // Up to max_bytes of the end of the log file.
  std::string LogTail(size_t max_bytes = 4096) const;

 protected:
  // name is used in messages ("depot-node").
  ServerProcess(std::string name, std::string db_path);
  virtual ~ServerProcess();  // SIGKILLs and reaps the child if it is still running

  // Deletes a stale port file, spawns argv, waits up to `timeout` until parse_port_file accepts
  // the port file's text and then until GET health_url() answers 200. On failure the child is
  // killed (if it still runs) and the error carries its exit status and the tail of this run's
  // log. FailedPrecondition when already running.
  absl::Status Launch(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                      const std::function<bool(const std::string&)>& parse_port_file,
                      const std::function<std::string()>& health_url);
  // Called after the child was reaped (e.g. to forget its ports).
  virtual void OnExit() {}

  const std::string& port_file() const { return port_file_; }

 private:
  // Reaps the child without blocking; returns its exit code (as in ProcessResult) when it has
  // exited, nullopt while it runs.
  std::optional<int> TryReap();
  int WaitReap();
  int Reaped(int status_or_minus_one);

  std::string name_, db_path_, port_file_, log_path_;
  pid_t pid_ = -1;
};

// A real depot-node process listening on an ephemeral port of 127.0.0.1.
//
// The port file and the log file live in the directory of db_path ("<db>.port", "<db>.log"), so
// several nodes in one directory do not collide and a restart on the same database finds them.
// The child's stdout and stderr are appended to the log file. The child gets
// PR_SET_PDEATHSIG(SIGKILL), so it dies with the thread that started it: call Start() from a
// thread that lives as long as the node should (e.g. the test's main thread).
//
// Not thread-safe: use one NodeProcess from one thread (its port()/url() may be read from any
// thread while it is not being started or stopped).
class NodeProcess : public ServerProcess {
 public:
  // extra_args are appended to the standard arguments on every Start().
  NodeProcess(std::string db_path, std::string node_id, std::vector<std::string> extra_args = {});

  // Spawns `depot-node --db DB --node-id ID --port 0 --port-file DB.port --log-level warn
  // EXTRA...` and waits for its port file and /healthz (see ServerProcess::Launch).
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

 private:
  void OnExit() override { port_ = 0; }

  std::string node_id_;
  std::vector<std::string> extra_args_;
  uint16_t port_ = 0;
};

// Parses Prometheus text exposition and returns the value of the first sample whose name is
// `name` and whose labels contain every `label="value"` pair given (in any order); nullopt when
// absent.
std::optional<double> MetricValue(
    std::string_view metrics_text, std::string_view name,
    const std::vector<std::pair<std::string, std::string>>& labels = {});
// Sum of the values of all samples named `name` (any labels); 0 when none.
double MetricSum(std::string_view metrics_text, std::string_view name);

// Sample master data. Column layouts are those of Ledger::ImportSkus/ImportBins (node/ledger.h).
namespace sample {

inline constexpr const char* kPlain = "WIDGET-1";    // no tracking
inline constexpr const char* kLot = "MILK-1L";       // lot + expiry tracked
inline constexpr const char* kSerial = "PHONE-X";    // serial tracked
inline constexpr const char* kNegative = "BOLT-M8";  // allow_negative
inline constexpr const char* kSafety = "SOAP-250";   // safety_stock = kSafetyStock
inline constexpr int64_t kSafetyStock = 5;

// Bins in walk order: A-01 (10), A-02 (20), B-01 (30).
inline constexpr const char* kBinA1 = "A-01";
inline constexpr const char* kBinA2 = "A-02";
inline constexpr const char* kBinB1 = "B-01";

// Header "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock" and one row
// for each of the five SKUs above.
std::string SkusCsv();
// Header "code,zone,walk_order" and the three bins above.
std::string BinsCsv();

}  // namespace sample

}  // namespace depot::testing
