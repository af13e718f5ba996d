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
#include "tests/support/test_support.h"

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
class CentralProcess : public ServerProcess {
 public:
  // extra_args are appended to the standard arguments on every Start().
  explicit CentralProcess(std::string db_path, std::vector<std::string> extra_args = {});

  // Spawns `depot-central --db DB --grpc-port P --http-port Q --port-file DB.port --log-level
  // info EXTRA...` and waits for its port file and /healthz (see ServerProcess::Launch).
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  uint16_t grpc_port() const { return grpc_port_; }
  uint16_t http_port() const { return http_port_; }
  std::string url() const;           // "http://127.0.0.1:HTTP_PORT"
  std::string grpc_address() const;  // "127.0.0.1:GRPC_PORT" (for depot-node --central)

 private:
  std::vector<std::string> extra_args_;
  uint16_t grpc_port_ = 0, http_port_ = 0;  // kept across restarts
};

// Parses the port file text ("grpc=PORT\nhttp=PORT\n"); false unless both ports are present.
bool ParseCentralPortFile(const std::string& text, uint16_t* grpc_port, uint16_t* http_port);

}  // namespace depot::testing
