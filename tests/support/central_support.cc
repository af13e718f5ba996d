#include "tests/support/central_support.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/http_client.h"
#include "tests/support/test_support.h"

namespace depot::testing {
namespace {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// 1, 2, 4 ... up to 20 ms between polls.
class Backoff {
 public:
  void Wait() {
    std::this_thread::sleep_for(Millis(delay_));
    delay_ = std::min(delay_ * 2, 20);
  }

 private:
  int delay_ = 1;
};

}  // namespace

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
    : db_path_(std::move(db_path)),
      extra_args_(std::move(extra_args)),
      port_file_(db_path_ + ".port"),
      log_path_(db_path_ + ".log") {}

CentralProcess::~CentralProcess() { Kill(SIGKILL); }

std::string CentralProcess::url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }
std::string CentralProcess::grpc_address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::optional<int> CentralProcess::TryReap() {
  if (pid_ <= 0) return -1;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  pid_ = -1;
  return r > 0 ? ExitCodeOf(status) : -1;
}

int CentralProcess::WaitReap() {
  if (pid_ <= 0) return -1;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  pid_ = -1;
  return r > 0 ? ExitCodeOf(status) : -1;
}

std::string CentralProcess::LogTail(size_t max_bytes) const {
  auto log = ReadFile(log_path_);
  if (!log.ok()) return "(no log)";
  if (log->size() <= max_bytes) return *log;
  return "..." + log->substr(log->size() - max_bytes);
}

absl::Status CentralProcess::Start(std::chrono::milliseconds timeout) {
  if (running()) return absl::FailedPreconditionError("depot-central is already running");
  unlink(port_file_.c_str());
  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", log_path_, ": ", std::strerror(errno)));
  }
  const off_t log_start = lseek(log_fd, 0, SEEK_END);
  std::vector<std::string> args = {kCentralBin,
                                   "--db",
                                   db_path_,
                                   "--grpc-port",
                                   std::to_string(grpc_port_),
                                   "--http-port",
                                   std::to_string(http_port_),
                                   "--port-file",
                                   port_file_,
                                   "--log-level",
                                   "info"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(cargs[0], cargs.data());
    const char msg[] = "CentralProcess: execv failed\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;

  auto fail = [&](const std::string& what) {
    const bool was_running = running();
    if (was_running) Kill(SIGKILL);
    std::string log;
    if (auto all = ReadFile(log_path_); all.ok() && static_cast<off_t>(all->size()) > log_start) {
      log = all->substr(static_cast<size_t>(log_start));
      if (log.size() > 4096) log = "..." + log.substr(log.size() - 4096);
    }
    std::string message = absl::StrCat("depot-central ", what, was_running ? " (killed it)" : "",
                                       "; log ", log_path_, ":\n", log);
    std::cerr << message << "\n";
    return absl::UnavailableError(message);
  };

  const auto deadline = SteadyClock::now() + timeout;
  Backoff backoff;
  for (;;) {
    if (auto code = TryReap()) {
      return fail(absl::StrCat("exited with status ", *code, " before listening"));
    }
    uint16_t g = 0, h = 0;
    if (auto text = ReadFile(port_file_); text.ok() && ParseCentralPortFile(*text, &g, &h)) {
      grpc_port_ = g;
      http_port_ = h;
      break;
    }
    if (SteadyClock::now() >= deadline) return fail("wrote no port file in time");
    backoff.Wait();
  }
  auto client = http::NewCurlClient(Millis(1000));
  for (;;) {
    if (auto code = TryReap()) {
      return fail(absl::StrCat("exited with status ", *code, " before /healthz answered"));
    }
    auto r = client->Send("GET", url() + "/healthz");
    if (r.ok() && r->status == 200) return absl::OkStatus();
    if (SteadyClock::now() >= deadline) {
      return fail(absl::StrCat("/healthz did not answer 200 in time: ",
                               r.ok() ? absl::StrCat("HTTP ", r->status) : r.status().ToString()));
    }
    backoff.Wait();
  }
}

void CentralProcess::Kill(int sig) {
  if (!running()) return;
  kill(pid_, sig);
  WaitReap();
}

int CentralProcess::Stop(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = SteadyClock::now() + timeout;
  Backoff backoff;
  for (;;) {
    if (auto code = TryReap()) return *code;
    if (SteadyClock::now() >= deadline) {
      std::cerr << "CentralProcess: depot-central ignored SIGTERM for " << timeout.count()
                << " ms; killing it\n";
      kill(pid_, SIGKILL);
      return WaitReap();
    }
    backoff.Wait();
  }
}

}  // namespace depot::testing
