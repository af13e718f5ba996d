#include "tests/support/central_support.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/test_support.h"

namespace depot::testing {

bool ParseCentralPortFile(const std::string& text, uint16_t* grpc_port, uint16_t* http_port) {
  uint32_t grpc = 0, http = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    uint32_t v = 0;
    if (absl::ConsumePrefix(&line, "grpc=") && absl::SimpleAtoi(line, &v)) grpc = v;
    else if (absl::ConsumePrefix(&line, "http=") && absl::SimpleAtoi(line, &v)) http = v;
  }
  if (grpc == 0 || grpc > 65535 || http == 0 || http > 65535) return false;
  *grpc_port = static_cast<uint16_t>(grpc);
  *http_port = static_cast<uint16_t>(http);
  return true;
}

CentralProcess::CentralProcess(std::string db_path, std::vector<std::string> extra_args)
    : ServerProcess("depot-central", std::move(db_path)), extra_args_(std::move(extra_args)) {}

std::string CentralProcess::url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }
std::string CentralProcess::grpc_address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

absl::Status CentralProcess::Start(std::chrono::milliseconds timeout) {
  std::vector<std::string> args = {kCentralBin,  "--db",        db_path(),
                                   "--grpc-port", std::to_string(grpc_port_),
                                   "--http-port", std::to_string(http_port_),
                                   "--port-file", port_file(),
                                   "--log-level", "info"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  return Launch(
      std::move(args), timeout,
      [this](const std::string& text) {
        return ParseCentralPortFile(text, &grpc_port_, &http_port_);
      },
      [this] { return url() + "/healthz"; });
}

}  // namespace depot::testing
