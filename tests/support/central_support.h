// Support code for tests that run a real depot-central process (see test_support.h for nodes).
//
// The absolute path of the binary under test comes from the compile definition DEPOT_CENTRAL_BIN
// set by tests/CMakeLists.txt.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace depot::testing {

inline constexpr const char* kCentralBin = DEPOT_CENTRAL_BIN;

// A real depot-central process on 127.0.0.1.
//
// The first Start() binds ephemeral ports (0) and reads them from the two-line port file
// ("grpc=PORT", "http=PORT"); later Start()s bind the same ports again, so nodes started with
// --central grpc_address() find the restarted central. The port file and the log live next to the
// database ("<db>.port", "<db>.log"); the child's stdout and stderr are appended to the log. The
// child gets PR_SET_PDEATHSIG(SIGKILL): start it from a thread that lives as long as it should.
//
// Not thread-safe: use one CentralProcess from one thread (the port accessors may be read from
// any thread while it is not being started or stopped).
class CentralProcess {
 public:
  // extra_args are appended to the standard arguments on every Start().
  explicit CentralProcess(std::string db_path, std::vector<std::string> extra_args = {});
  ~CentralProcess();  // SIGKILLs and reaps the child if it is still running
  CentralProcess(const CentralProcess&) = delete;
  CentralProcess& operator=(const CentralProcess&) = delete;

  // Spawns `depot-central --db DB --grpc-port P --http-port Q --port-file DB.port --log-level
  // info EXTRA...`, waits up to `timeout` for the port file and for GET /healthz to answer 200.
  // On failure the child is killed and the error carries its exit status and the tail of this
  // run's log. FailedPrecondition when already running.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  uint16_t grpc_port() const { return grpc_port_; }
  uint16_t http_port() const { return http_port_; }
  std::string url() const;           // "http://127.0.0.1:HTTP_PORT"
  std::string grpc_address() const;  // "127.0.0.1:GRPC_PORT" (for depot-node --central)
  const std::string& db_path() const { return db_path_; }
  const std::string& log_path() const { return log_path_; }

  // Sends sig and reaps the child (blocks until it exits). No-op when not running.
  void Kill(int sig = SIGKILL);
  // SIGTERM, then waits up to `timeout` for a clean exit (SIGKILL after that). Returns the exit
  // status, 128 + signal when killed by a signal, or -1 when it was not running.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  std::string LogTail(size_t max_bytes = 4096) const;

 private:
  std::optional<int> TryReap();
  int WaitReap();

  std::string db_path_;
  std::vector<std::string> extra_args_;
  std::string port_file_, log_path_;
  pid_t pid_ = -1;
  uint16_t grpc_port_ = 0, http_port_ = 0;
};

// Parses the port file text ("grpc=PORT\nhttp=PORT\n"); false unless both ports are present.
bool ParseCentralPortFile(const std::string& text, uint16_t* grpc_port, uint16_t* http_port);

}  // namespace depot::testing
