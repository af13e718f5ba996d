#include "tests/support/test_support.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_client.h"

extern char** environ;

namespace depot::testing {
namespace {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

std::string TempRoot() {
  const char* t = std::getenv("TMPDIR");
  std::string root = t && *t ? t : "/tmp";
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root;
}

// Exit code in ProcessResult's convention from a waitpid status.
int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A temporary file that is removed on destruction; fd stays open for the child to inherit.
struct TempFile {
  TempFile() {
    path = TempRoot() + "/depot-proc-XXXXXX";
    fd = mkostemp(path.data(), O_CLOEXEC);
  }
  ~TempFile() {
    if (fd >= 0) close(fd);
    if (fd >= 0) unlink(path.c_str());
  }
  std::string ReadAll() const {
    auto s = ReadFile(path);
    return s.ok() ? *s : std::string();
  }
  std::string path;
  int fd = -1;
};

// Builds a NULL-terminated char* array over strings that must outlive it.
std::vector<char*> CArray(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnv(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    bool replaced = false;
    for (const auto& [k, v] : extra) {
      if (kv.size() > k.size() && kv.substr(0, k.size()) == k && kv[k.size()] == '=') {
        replaced = true;
        break;
      }
    }
    if (!replaced) env.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

// Sleeps a little longer each time, for polling loops: 1, 2, 4 ... up to 20 ms.
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

std::string MakeTempDir(const std::string& prefix) {
  std::string templ = TempRoot() + "/" + prefix + "XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    std::cerr << "MakeTempDir: mkdtemp(" << templ << "): " << std::strerror(errno) << "\n";
    std::abort();
  }
  return templ;
}

absl::Status WriteFile(const std::string& path, std::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& extra_env,
                         std::chrono::milliseconds timeout) {
  ProcessResult result;
  if (argv.empty()) {
    result.exit_code = 127;
    result.err = "RunProcess: empty argv";
    return result;
  }
  TempFile out, err;
  if (out.fd < 0 || err.fd < 0) {
    result.exit_code = 127;
    result.err = absl::StrCat("RunProcess: mkstemp: ", std::strerror(errno));
    return result;
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<char*> cargs = CArray(args);
  std::vector<std::string> env = MergedEnv(extra_env);
  std::vector<char*> cenv = CArray(env);
  const bool search_path = argv[0].find('/') == std::string::npos;
  std::string path_env;
  if (const char* p = std::getenv("PATH")) path_env = p;

  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    result.exit_code = 127;
    result.err = absl::StrCat("RunProcess: pipe: ", std::strerror(errno));
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(exec_pipe[0]);
    close(exec_pipe[1]);
    result.exit_code = 127;
    result.err = absl::StrCat("RunProcess: fork: ", std::strerror(errno));
    return result;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out.fd, 1);
    dup2(err.fd, 2);
    if (search_path) {
      execvpe(cargs[0], cargs.data(), cenv.data());
    } else {
      execve(cargs[0], cargs.data(), cenv.data());
    }
    int e = errno;
    (void)!write(exec_pipe[1], &e, sizeof(e));
    _exit(127);
  }
  close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(exec_pipe[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(exec_pipe[0]);

  const auto deadline = SteadyClock::now() + timeout;
  int status = 0;
  bool timed_out = false;
  Backoff backoff;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (SteadyClock::now() >= deadline) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      timed_out = true;
      break;
    }
    backoff.Wait();
  }
  result.out = out.ReadAll();
  result.err = err.ReadAll();
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    result.exit_code = 127;
    result.err += absl::StrCat("RunProcess: cannot execute ", argv[0], ": ",
                               std::strerror(exec_errno));
  } else if (timed_out) {
    result.exit_code = 124;
    result.err += absl::StrCat("RunProcess: ", argv[0], " killed after ", timeout.count(), " ms");
  } else {
    result.exit_code = ExitCodeOf(status);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// NodeProcess

ServerProcess::ServerProcess(std::string name, std::string db_path)
    : name_(std::move(name)),
      db_path_(std::move(db_path)),
      port_file_(db_path_ + ".port"),
      log_path_(db_path_ + ".log") {}

ServerProcess::~ServerProcess() { Kill(SIGKILL); }

int ServerProcess::Reaped(int code) {
  pid_ = -1;
  OnExit();
  return code;
}

std::optional<int> ServerProcess::TryReap() {
  if (pid_ <= 0) return -1;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  return Reaped(r > 0 ? ExitCodeOf(status) : -1);
}

int ServerProcess::WaitReap() {
  if (pid_ <= 0) return -1;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  return Reaped(r > 0 ? ExitCodeOf(status) : -1);
}

std::string ServerProcess::LogTail(size_t max_bytes) const {
  auto log = ReadFile(log_path_);
  if (!log.ok()) return "(no log)";
  if (log->size() <= max_bytes) return *log;
  return "..." + log->substr(log->size() - max_bytes);
}

absl::Status ServerProcess::Launch(std::vector<std::string> args,
                                   std::chrono::milliseconds timeout,
                                   const std::function<bool(const std::string&)>& parse_port_file,
                                   const std::function<std::string()>& health_url) {
  if (running()) return absl::FailedPreconditionError(absl::StrCat(name_, " is already running"));
  unlink(port_file_.c_str());
  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", log_path_, ": ", std::strerror(errno)));
  }
  const off_t log_start = lseek(log_fd, 0, SEEK_END);
  std::vector<char*> cargs = CArray(args);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);  // the parent died before prctl
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(cargs[0], cargs.data());
    const char msg[] = "ServerProcess: execv failed\n";
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
    std::string message = absl::StrCat(name_, " ", what, was_running ? " (killed it)" : "",
                                       "; log ", log_path_, ":\n", log);
    std::cerr << message << "\n";
    return absl::UnavailableError(message);
  };

  const auto deadline = SteadyClock::now() + timeout;
  Backoff backoff;
  // 1. The port file (written atomically by rename once the server listens).
  for (;;) {
    if (auto code = TryReap()) {
      return fail(absl::StrCat("exited with status ", *code, " before listening"));
    }
    if (auto text = ReadFile(port_file_); text.ok() && parse_port_file(*text)) break;
    if (SteadyClock::now() >= deadline) return fail("wrote no port file in time");
    backoff.Wait();
  }
  // 2. /healthz answers 200.
  auto client = http::NewCurlClient(Millis(1000));
  for (;;) {
    if (auto code = TryReap()) {
      return fail(absl::StrCat("exited with status ", *code, " before /healthz answered"));
    }
    auto r = client->Send("GET", health_url());
    if (r.ok() && r->status == 200) return absl::OkStatus();
    if (SteadyClock::now() >= deadline) {
      return fail(absl::StrCat("/healthz did not answer 200 in time: ",
                               r.ok() ? absl::StrCat("HTTP ", r->status) : r.status().ToString()));
    }
    backoff.Wait();
  }
}

void ServerProcess::Kill(int sig) {
  if (!running()) return;
  kill(pid_, sig);
  WaitReap();
}

int ServerProcess::Stop(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = SteadyClock::now() + timeout;
  Backoff backoff;
  for (;;) {
    if (auto code = TryReap()) return *code;
    if (SteadyClock::now() >= deadline) {
      std::cerr << name_ << " ignored SIGTERM for " << timeout.count() << " ms; killing it\n";
      kill(pid_, SIGKILL);
      return WaitReap();
    }
    backoff.Wait();
  }
}

NodeProcess::NodeProcess(std::string db_path, std::string node_id,
                         std::vector<std::string> extra_args)
    : ServerProcess("depot-node", std::move(db_path)),
      node_id_(std::move(node_id)),
      extra_args_(std::move(extra_args)) {}

std::string NodeProcess::url() const { return absl::StrCat("http://127.0.0.1:", port_); }

absl::Status NodeProcess::Start(std::chrono::milliseconds timeout) {
  std::vector<std::string> args = {kNodeBin,    "--db",        db_path(),  "--node-id",
                                   node_id_,    "--port",      "0",        "--port-file",
                                   port_file(), "--log-level", "warn"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  return Launch(
      std::move(args), timeout,
      [this](const std::string& text) {
        uint32_t port = 0;
        std::string trimmed(text);
        while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) {
          trimmed.pop_back();
        }
        if (!absl::SimpleAtoi(trimmed, &port) || port == 0 || port > 65535) return false;
        port_ = static_cast<uint16_t>(port);
        return true;
      },
      [this] { return url() + "/healthz"; });
}

// ---------------------------------------------------------------------------------------------
// Metrics

namespace {

// Splits one sample line "name{a="x",b="y"} value" into its parts; false for comments/blank.
bool ParseSample(std::string_view line, std::string_view* name, std::string_view* labels,
                 std::string_view* value) {
  if (line.empty() || line[0] == '#') return false;
  size_t name_end = line.find_first_of("{ ");
  if (name_end == std::string_view::npos) return false;
  *name = line.substr(0, name_end);
  size_t rest = name_end;
  *labels = {};
  if (line[name_end] == '{') {
    // Label values may contain '}' only escaped inside quotes; scan respecting quotes.
    bool quoted = false;
    size_t i = name_end + 1;
    for (; i < line.size(); ++i) {
      char c = line[i];
      if (quoted && c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = !quoted;
      } else if (!quoted && c == '}') {
        break;
      }
    }
    if (i >= line.size()) return false;
    *labels = line.substr(name_end + 1, i - name_end - 1);
    rest = i + 1;
  }
  while (rest < line.size() && line[rest] == ' ') ++rest;
  size_t value_end = line.find(' ', rest);
  *value = line.substr(rest, value_end == std::string_view::npos ? std::string_view::npos
                                                                   : value_end - rest);
  return !value->empty();
}

std::optional<double> ToDouble(std::string_view v) {
  if (v == "+Inf") return std::numeric_limits<double>::infinity();
  if (v == "-Inf") return -std::numeric_limits<double>::infinity();
  double d = 0;
  if (!absl::SimpleAtod(absl::string_view(v.data(), v.size()), &d)) return std::nullopt;
  return d;
}

}  // namespace

std::optional<double> MetricValue(std::string_view text, std::string_view name,
                                  const std::vector<std::pair<std::string, std::string>>& labels) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    std::string_view n, l, v;
    if (!ParseSample(line, &n, &l, &v) || n != name) continue;
    bool match = true;
    for (const auto& [k, val] : labels) {
      if (l.find(absl::StrCat(k, "=\"", val, "\"")) == std::string_view::npos) {
        match = false;
        break;
      }
    }
    if (match) return ToDouble(v);
  }
  return std::nullopt;
}

double MetricSum(std::string_view text, std::string_view name) {
  double sum = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    std::string_view n, l, v;
    if (!ParseSample(line, &n, &l, &v) || n != name) continue;
    if (auto d = ToDouble(v)) sum += *d;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Sample master data

namespace sample {

std::string SkusCsv() {
  return absl::StrCat(
      "code,gtin,name,unit,tracking,expiry_tracked,allow_negative,safety_stock\n",
      kPlain, ",4006381333931,Widget,ea,none,false,false,0\n",
      kLot, ",96385074,\"Milk, 1 l\",ea,lot,true,false,0\n",
      kSerial, ",,Phone X,ea,serial,false,false,0\n",
      kNegative, ",,Bolt M8,ea,none,false,true,0\n",
      kSafety, ",,Soap 250 ml,ea,none,false,false,", kSafetyStock, "\n");
}

std::string BinsCsv() {
  return absl::StrCat("code,zone,walk_order\n",
                      kBinA1, ",A,10\n",
                      kBinA2, ",A,20\n",
                      kBinB1, ",B,30\n");
}

}  // namespace sample

}  // namespace depot::testing
