#include "common/http_server.h"

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <http_parser.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <climits>
#include <mutex>
#include <thread>

#include <asio.hpp>

#include "absl/strings/str_cat.h"

namespace depot::http {

// ---------------------------------------------------------------------------------------------
// Free helpers.
// ---------------------------------------------------------------------------------------------

namespace {

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

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes; '+' means space in a query component. Malformed escapes are kept literally.
std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}
std::string DecodeQueryComponent(std::string_view s) { return Decode(s, true); }

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

bool HasLineBreak(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

void AppendNumber(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

}  // namespace

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

std::string PercentDecode(std::string_view s) { return Decode(s, false); }

std::optional<std::string> Request::Query(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view key = part.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (DecodeQueryComponent(key) == name) return DecodeQueryComponent(value);
  }
  return std::nullopt;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[(c >> 4) & 0xf]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

int HttpStatusFromCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kCancelled: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

Response ErrorResponse(int http_status, std::string_view code, std::string_view message) {
  Response r;
  r.status = http_status;
  r.body.reserve(40 + code.size() + message.size());
  r.body += R"({"error":{"code":")";
  r.body += JsonEscape(code);
  r.body += R"(","message":")";
  r.body += JsonEscape(message);
  r.body += "\"}}";
  return r;
}

Response ErrorResponse(const absl::Status& status) {
  if (status.ok()) {
    return ErrorResponse(500, "INTERNAL", "ErrorResponse called with an OK status");
  }
  std::string code = absl::StatusCodeToString(status.code());
  if (code.empty()) code = "UNKNOWN";
  // absl::string_view is not std::string_view in every absl build.
  const std::string_view message(status.message().data(), status.message().size());
  return ErrorResponse(HttpStatusFromCode(status.code()), code, message);
}

// ---------------------------------------------------------------------------------------------
// Server internals.
// ---------------------------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Executor>;

constexpr size_t kReadBufferSize = 8 * 1024;
// After a final response (Connection: close or an error) the server half-closes and keeps
// draining the peer's input for a while, so that the peer is not reset before it read the
// response (closing with unread input makes the kernel send RST).
constexpr std::chrono::milliseconds kMaxLinger{1000};
constexpr size_t kMaxLingerBytes = 16u << 20;
constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

class Connection;
class ServerCore;

// Lets non-I/O threads post to a worker's event loop only while that loop is alive.
struct Gate {
  std::mutex mu;
  asio::io_context* ctx = nullptr;  // guarded by mu; null once the server is stopping
};

// One I/O thread with its own event loop and the connections assigned to it. All members except
// `gate` are only touched on the worker's thread (or before the thread starts / after it ended).
struct Worker {
  explicit Worker(ServerCore* s) : server(s), gate(std::make_shared<Gate>()) { gate->ctx = &ctx; }

  ServerCore* server;
  asio::io_context ctx{1};  // declared first among I/O members: destroyed last
  asio::executor_work_guard<Executor> work{ctx.get_executor()};
  Timer sweep_timer{ctx};
  std::shared_ptr<Gate> gate;
  std::vector<std::shared_ptr<Connection>> connections;  // open connections of this worker
  std::thread thread;

  void Add(const std::shared_ptr<Connection>& c);
  void Remove(Connection* c);
  void ArmSweep(std::chrono::milliseconds tick);
  void Sweep();
};

thread_local Worker* tls_worker = nullptr;

class ServerCore {
 public:
  ServerCore(ServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {}
  ~ServerCore() { Stop(); }

  absl::Status Listen();
  void Run();
  void Stop();
  uint16_t port() const { return port_; }

  const ServerOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  std::atomic<size_t>& active_connections() { return active_; }

 private:
  void DoAccept();

  const ServerOptions options_;
  const Handler handler_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // I/O objects bound to workers_[0]->ctx; declared after workers_ so they are destroyed first.
  std::optional<Acceptor> acceptor_;
  std::optional<Timer> accept_retry_timer_;
  size_t next_worker_ = 0;
  uint16_t port_ = 0;
  std::atomic<size_t> active_{0};
  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore* server, Worker* worker)
      : server_(server), worker_(worker), gate_(worker->gate), socket_(std::in_place, worker->ctx) {
    http_parser_init(&parser_, HTTP_REQUEST);
    parser_.data = this;
    buf_.resize(kReadBufferSize);
  }

  Socket& socket() { return *socket_; }
  size_t index = 0;  // position in worker_->connections; owned by Worker
  Clock::time_point deadline() const { return deadline_; }

  // I/O thread. `reject`: answer 503 and close (too many connections).
  void Start(bool reject);
  // I/O thread: the deadline passed.
  void OnDeadline();
  // I/O thread: closes the socket immediately and forgets the connection. Idempotent.
  void Close();
  // Any thread: the response for the request in flight.
  void Deliver(Response response);

 private:
  enum class State { kReading, kProcessing, kWriting, kLingering, kClosed };

  static const http_parser_settings kSettings;
  static int OnMessageBegin(http_parser* p);
  static int OnUrl(http_parser* p, const char* at, size_t len);
  static int OnHeaderField(http_parser* p, const char* at, size_t len);
  static int OnHeaderValue(http_parser* p, const char* at, size_t len);
  static int OnHeadersComplete(http_parser* p);
  static int OnBody(http_parser* p, const char* at, size_t len);
  static int OnMessageComplete(http_parser* p);
  static http_parser_settings MakeSettings();

  bool AddHeaderBytes(size_t n);
  void StartRead();
  void OnRead(const asio::error_code& ec, size_t n);
  void ProcessInput();
  void FailParse(http_errno err);
  void Dispatch();
  void OnResponse(Response&& response);
  void WriteResponse(Response&& response, bool close_after);
  void OnWritten(const asio::error_code& ec);
  void BeginLinger();

  ServerCore* const server_;
  Worker* const worker_;  // compared only (never dereferenced) off the I/O thread
  const std::shared_ptr<Gate> gate_;
  // Reset (destroyed) on Close() on the I/O thread, so that a Connection kept alive by a
  // responder never outlives its io_context while holding an I/O object.
  std::optional<Socket> socket_;

  State state_ = State::kReading;
  Clock::time_point deadline_ = kNoDeadline;
  bool reading_ = false;       // an async read is pending
  bool closing_ = false;       // the response being written is the last one
  bool peer_eof_ = false;      // the peer shut down its side
  bool keep_alive_ = true;     // of the current request
  bool head_request_ = false;  // current request is HEAD
  size_t discarded_ = 0;       // bytes drained while lingering
  std::string remote_;

  // Input buffer: [begin_, end_) holds received bytes not yet parsed (pipelined leftovers).
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;

  http_parser parser_;
  Request req_;
  bool message_started_ = false;
  bool last_was_value_ = true;
  size_t header_bytes_ = 0;
  int error_status_ = 0;        // 413 / 431 detected in a callback
  std::string pending_prefix_;  // unsent tail of an interim "100 Continue"

  // Output buffers, kept alive until the write completes.
  std::string out_head_;
  std::string out_body_;
};

// Shared by all copies of one Responder.
class ResponderState {
 public:
  explicit ResponderState(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}
  ResponderState(const ResponderState&) = delete;
  ResponderState& operator=(const ResponderState&) = delete;
  ~ResponderState() {
    if (done_.exchange(true)) return;
    try {
      conn_->Deliver(
          ErrorResponse(500, "INTERNAL", "the request handler did not produce a response"));
    } catch (...) {  // out of memory: nothing sensible left to do
    }
  }
  void Send(Response response) {
    if (done_.exchange(true)) return;
    conn_->Deliver(std::move(response));
  }

 private:
  std::shared_ptr<Connection> conn_;
  std::atomic<bool> done_{false};
};

// ---- Worker ----------------------------------------------------------------------------------

void Worker::Add(const std::shared_ptr<Connection>& c) {
  c->index = connections.size();
  connections.push_back(c);
}

void Worker::Remove(Connection* c) {
  size_t i = c->index;
  if (i >= connections.size() || connections[i].get() != c) return;
  if (i + 1 != connections.size()) {
    connections[i] = std::move(connections.back());
    connections[i]->index = i;
  }
  connections.pop_back();
}

void Worker::ArmSweep(std::chrono::milliseconds tick) {
  sweep_timer.expires_after(tick);
  sweep_timer.async_wait([this, tick](const asio::error_code& ec) {
    if (ec) return;
    Sweep();
    ArmSweep(tick);
  });
}

void Worker::Sweep() {
  const Clock::time_point now = Clock::now();
  std::vector<std::shared_ptr<Connection>> expired;
  for (const auto& c : connections) {
    if (c->deadline() <= now) expired.push_back(c);
  }
  for (const auto& c : expired) c->OnDeadline();
}

// ---- Connection: parser callbacks -------------------------------------------------------------

http_parser_settings Connection::MakeSettings() {
  http_parser_settings s;
  std::memset(&s, 0, sizeof(s));
  s.on_message_begin = &Connection::OnMessageBegin;
  s.on_url = &Connection::OnUrl;
  s.on_header_field = &Connection::OnHeaderField;
  s.on_header_value = &Connection::OnHeaderValue;
  s.on_headers_complete = &Connection::OnHeadersComplete;
  s.on_body = &Connection::OnBody;
  s.on_message_complete = &Connection::OnMessageComplete;
  return s;
}

const http_parser_settings Connection::kSettings = Connection::MakeSettings();

bool Connection::AddHeaderBytes(size_t n) {
  header_bytes_ += n;
  if (header_bytes_ > server_->options().max_header_bytes) {
    error_status_ = 431;
    return false;
  }
  return true;
}

int Connection::OnMessageBegin(http_parser* p) {
  auto* c = static_cast<Connection*>(p->data);
  c->req_ = Request();
  c->message_started_ = true;
  c->last_was_value_ = true;
  c->header_bytes_ = 0;
  c->error_status_ = 0;
  c->head_request_ = false;
  c->deadline_ = Clock::now() + c->server_->options().read_timeout;
  return 0;
}

int Connection::OnUrl(http_parser* p, const char* at, size_t len) {
  auto* c = static_cast<Connection*>(p->data);
  if (!c->AddHeaderBytes(len)) return 1;
  c->req_.target.append(at, len);
  return 0;
}

int Connection::OnHeaderField(http_parser* p, const char* at, size_t len) {
  auto* c = static_cast<Connection*>(p->data);
  // ": " and CRLF of each header line count too.
  if (!c->AddHeaderBytes(len + (c->last_was_value_ ? 4 : 0))) return 1;
  if (c->last_was_value_) {
    c->req_.headers.emplace_back();
    c->last_was_value_ = false;
  }
  c->req_.headers.back().first.append(at, len);
  return 0;
}

int Connection::OnHeaderValue(http_parser* p, const char* at, size_t len) {
  auto* c = static_cast<Connection*>(p->data);
  if (!c->AddHeaderBytes(len)) return 1;
  c->last_was_value_ = true;
  if (c->req_.headers.empty()) c->req_.headers.emplace_back();
  c->req_.headers.back().second.append(at, len);
  return 0;
}

int Connection::OnHeadersComplete(http_parser* p) {
  auto* c = static_cast<Connection*>(p->data);
  Request& req = c->req_;
  req.method = http_method_str(static_cast<http_method>(p->method));
  // Request line framing: method, two spaces, "HTTP/1.1", CRLF; plus the final CRLF.
  if (!c->AddHeaderBytes(req.method.size() + 13)) return -1;
  const size_t max_body = c->server_->options().max_body_bytes;
  const bool has_length = (p->flags & F_CONTENTLENGTH) != 0 && p->content_length != ULLONG_MAX;
  if (has_length && p->content_length > max_body) {
    c->error_status_ = 413;
    return -1;
  }
  if (has_length && p->content_length > 0) req.body.reserve(p->content_length);
  const bool expects_body = (p->flags & F_CHUNKED) != 0 || (has_length && p->content_length > 0);
  if (expects_body && p->http_major == 1 && p->http_minor >= 1 &&
      EqualsIgnoreCase(req.Header("expect"), "100-continue")) {
    // The client waits for this before sending the body. A non-blocking best-effort write: if
    // the socket cannot take it right now the client proceeds after its own timeout; a partial
    // write is completed in front of the final response.
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::error_code ec;
    size_t n = c->socket_->write_some(asio::buffer(kContinue.data(), kContinue.size()), ec);
    if (!ec && n < kContinue.size()) c->pending_prefix_.assign(kContinue.substr(n));
  }
  return 0;
}

int Connection::OnBody(http_parser* p, const char* at, size_t len) {
  auto* c = static_cast<Connection*>(p->data);
  if (c->req_.body.size() + len > c->server_->options().max_body_bytes) {
    c->error_status_ = 413;
    return 1;
  }
  c->req_.body.append(at, len);
  return 0;
}

int Connection::OnMessageComplete(http_parser* p) {
  auto* c = static_cast<Connection*>(p->data);
  // After an upgrade (or CONNECT) the rest of the stream is another protocol: close afterwards.
  c->keep_alive_ = http_should_keep_alive(p) != 0 && p->upgrade == 0;
  // Stop parsing here: pipelined requests wait until this one is answered.
  http_parser_pause(p, 1);
  return 0;
}

// ---- Connection: state machine ----------------------------------------------------------------

void Connection::Start(bool reject) {
  worker_->Add(shared_from_this());
  asio::error_code ec;
  socket_->non_blocking(true, ec);
  tcp::endpoint ep = socket_->remote_endpoint(ec);
  if (!ec) {
    const std::string ip = ep.address().to_string();
    remote_ = ep.address().is_v6() ? absl::StrCat("[", ip, "]:", ep.port())
                                   : absl::StrCat(ip, ":", ep.port());
  }
  if (reject) {
    WriteResponse(ErrorResponse(503, "UNAVAILABLE", "too many connections"), /*close_after=*/true);
    return;
  }
  state_ = State::kReading;
  deadline_ = Clock::now() + server_->options().idle_timeout;
  StartRead();
}

void Connection::StartRead() {
  if (reading_ || state_ == State::kClosed) return;
  reading_ = true;
  asio::mutable_buffer target;
  if (state_ == State::kReading) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == buf_.size()) {  // not expected (the parser consumes all input), but be safe
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
    }
    target = asio::buffer(buf_.data() + end_, buf_.size() - end_);
  } else {
    target = asio::buffer(buf_.data(), buf_.size());  // draining: contents are discarded
  }
  socket_->async_read_some(target, [self = shared_from_this()](const asio::error_code& ec,
                                                               size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(const asio::error_code& ec, size_t n) {
  reading_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    if (state_ == State::kReading || state_ == State::kLingering) {
      Close();
    } else {
      peer_eof_ = true;  // a final response is being written; let it finish
    }
    return;
  }
  if (state_ == State::kReading) {
    end_ += n;
    ProcessInput();
    return;
  }
  if (state_ != State::kLingering && !(state_ == State::kWriting && closing_)) {
    Close();  // unreachable: reads are only pending while reading or draining
    return;
  }
  // A final response is being written or was written: drain and discard.
  discarded_ += n;
  if (discarded_ > kMaxLingerBytes) {
    Close();
    return;
  }
  StartRead();
}

void Connection::ProcessInput() {
  while (begin_ < end_) {
    size_t n = http_parser_execute(&parser_, &kSettings, buf_.data() + begin_, end_ - begin_);
    begin_ += n;
    http_errno err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) {  // one request complete
      http_parser_pause(&parser_, 0);
      Dispatch();
      return;
    }
    if (err != HPE_OK) {
      FailParse(err);
      return;
    }
    if (n == 0) break;  // defensive: no progress
  }
  if (begin_ == end_) begin_ = end_ = 0;
  if (!message_started_) deadline_ = Clock::now() + server_->options().idle_timeout;
  StartRead();
}

void Connection::FailParse(http_errno err) {
  message_started_ = false;
  head_request_ = false;
  if (error_status_ == 413) {
    WriteResponse(ErrorResponse(413, "RESOURCE_EXHAUSTED",
                                absl::StrCat("request body exceeds ",
                                             server_->options().max_body_bytes, " bytes")),
                  true);
  } else if (error_status_ == 431 || err == HPE_HEADER_OVERFLOW) {
    WriteResponse(ErrorResponse(431, "RESOURCE_EXHAUSTED",
                                absl::StrCat("request line and headers exceed ",
                                             server_->options().max_header_bytes, " bytes")),
                  true);
  } else {
    WriteResponse(
        ErrorResponse(400, "INVALID_ARGUMENT",
                      absl::StrCat("malformed HTTP request: ", http_errno_description(err))),
        true);
  }
}

void Connection::OnDeadline() {
  switch (state_) {
    case State::kReading:
      if (message_started_) {
        message_started_ = false;
        head_request_ = false;
        WriteResponse(ErrorResponse(408, "DEADLINE_EXCEEDED",
                                    absl::StrCat("request not received completely within ",
                                                 server_->options().read_timeout.count(), " ms")),
                      true);
      } else {
        Close();  // idle keep-alive connection
      }
      break;
    case State::kWriting:    // the peer does not read its response
    case State::kLingering:  // done draining
      Close();
      break;
    case State::kProcessing:
    case State::kClosed: deadline_ = kNoDeadline; break;
  }
}

void Connection::Dispatch() {
  state_ = State::kProcessing;
  deadline_ = kNoDeadline;
  message_started_ = false;

  Request req = std::move(req_);
  req_ = Request();
  size_t q = req.target.find('?');
  if (q == std::string::npos) {
    req.path = req.target;
  } else {
    req.path = req.target.substr(0, q);
    req.query = req.target.substr(q + 1);
  }
  req.remote = remote_;
  for (auto& header : req.headers) {  // done here so that chunked trailers are included
    for (char& ch : header.first) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  head_request_ = req.method == "HEAD";

  auto state = std::make_shared<ResponderState>(shared_from_this());
  Responder responder = [state](Response response) { state->Send(std::move(response)); };
  try {
    server_->handler()(std::move(req), std::move(responder));
  } catch (...) {
    state->Send(ErrorResponse(500, "INTERNAL", "internal error while handling the request"));
  }
  // If the handler dropped every copy of the responder without calling it, `state` dies here
  // and answers 500.
}

void Connection::Deliver(Response response) {
  if (tls_worker == worker_) {  // already on this connection's I/O thread
    OnResponse(std::move(response));
    return;
  }
  std::lock_guard<std::mutex> lock(gate_->mu);
  if (gate_->ctx == nullptr) return;  // server stopping or gone
  asio::post(*gate_->ctx, [self = shared_from_this(), r = std::move(response)]() mutable {
    self->OnResponse(std::move(r));
  });
}

void Connection::OnResponse(Response&& response) {
  if (state_ != State::kProcessing) return;  // closed meanwhile
  bool close_after = !keep_alive_;
  for (const auto& [name, value] : response.headers) {
    if (EqualsIgnoreCase(name, "connection") && EqualsIgnoreCase(value, "close")) {
      close_after = true;
    }
  }
  WriteResponse(std::move(response), close_after);
}

void Connection::WriteResponse(Response&& response, bool close_after) {
  int status = response.status;
  if (status < 100 || status > 999) status = 500;
  const bool no_body = head_request_ || status < 200 || status == 204 || status == 304;

  out_head_.clear();
  if (!pending_prefix_.empty()) {
    out_head_ += pending_prefix_;
    pending_prefix_.clear();
  }
  out_head_ += "HTTP/1.1 ";
  AppendNumber(out_head_, static_cast<uint64_t>(status));
  out_head_ += ' ';
  out_head_ += ReasonPhrase(status);
  out_head_ += "\r\n";
  if (!response.content_type.empty() && !HasLineBreak(response.content_type)) {
    out_head_ += "Content-Type: ";
    out_head_ += response.content_type;
    out_head_ += "\r\n";
  }
  out_head_ += "Content-Length: ";
  AppendNumber(out_head_, (no_body && !head_request_) ? 0 : response.body.size());
  out_head_ += close_after ? "\r\nConnection: close\r\n" : "\r\nConnection: keep-alive\r\n";
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || HasLineBreak(name) || HasLineBreak(value) ||
        EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "connection")) {
      continue;  // server-controlled, or would split the response
    }
    out_head_ += name;
    out_head_ += ": ";
    out_head_ += value;
    out_head_ += "\r\n";
  }
  out_head_ += "\r\n";
  if (no_body) {
    out_body_.clear();
  } else {
    out_body_ = std::move(response.body);
  }

  state_ = State::kWriting;
  closing_ = close_after;
  deadline_ = Clock::now() + server_->options().idle_timeout;
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(out_head_), asio::buffer(out_body_)};
  asio::async_write(
      *socket_, buffers,
      [self = shared_from_this()](const asio::error_code& ec, size_t) { self->OnWritten(ec); });
}

void Connection::OnWritten(const asio::error_code& ec) {
  if (state_ == State::kClosed) return;
  if (ec) {
    Close();
    return;
  }
  if (out_body_.capacity() > 64 * 1024) std::string().swap(out_body_);
  if (closing_) {
    BeginLinger();
    return;
  }
  state_ = State::kReading;
  ProcessInput();  // pipelined leftovers first, else read more
}

void Connection::BeginLinger() {
  state_ = State::kLingering;
  asio::error_code ignored;
  socket_->shutdown(asio::socket_base::shutdown_send, ignored);
  if (peer_eof_) {
    Close();
    return;
  }
  deadline_ = Clock::now() + std::min(kMaxLinger, server_->options().read_timeout);
  StartRead();
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();  // Remove() may drop the last other reference
  state_ = State::kClosed;
  deadline_ = kNoDeadline;
  asio::error_code ignored;
  socket_->close(ignored);
  socket_.reset();
  worker_->Remove(this);
  server_->active_connections().fetch_sub(1, std::memory_order_relaxed);
}

// ---- ServerCore -------------------------------------------------------------------------------

absl::Status ServerCore::Listen() {
  const ServerOptions& o = options_;
  if (o.threads < 1 || o.threads > 1024) {
    return absl::InvalidArgumentError("ServerOptions.threads must be in [1, 1024]");
  }
  if (o.read_timeout.count() <= 0 || o.idle_timeout.count() <= 0) {
    return absl::InvalidArgumentError("ServerOptions timeouts must be positive");
  }
  if (o.max_connections == 0 || o.max_header_bytes == 0) {
    return absl::InvalidArgumentError(
        "ServerOptions.max_connections and max_header_bytes must be positive");
  }
  if (!handler_) return absl::InvalidArgumentError("Server needs a handler");

  for (int i = 0; i < o.threads; ++i) workers_.push_back(std::make_unique<Worker>(this));
  asio::io_context& ctx0 = workers_[0]->ctx;

  asio::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(o.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, o.port);
  } else {
    asio::ip::basic_resolver<tcp, Executor> resolver(ctx0);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve host '", o.host, "': ", ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }
  const std::string where = absl::StrCat(o.host, ":", o.port);

  acceptor_.emplace(ctx0);
  accept_retry_timer_.emplace(ctx0);
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("open socket for ", where, ": ", ec.message()));
  }
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_->bind(endpoint, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("bind ", where, ": ", ec.message()));
  }
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("listen on ", where, ": ", ec.message()));
  }
  tcp::endpoint local = acceptor_->local_endpoint(ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("local endpoint of ", where, ": ", ec.message()));
  }
  port_ = local.port();
  return absl::OkStatus();
}

void ServerCore::Run() {
  using std::chrono::milliseconds;
  milliseconds shortest = std::min({options_.read_timeout, options_.idle_timeout, kMaxLinger});
  milliseconds tick = std::clamp(shortest / 8, milliseconds(5), milliseconds(250));
  DoAccept();
  for (auto& w : workers_) {
    w->ArmSweep(tick);
    Worker* worker = w.get();
    worker->thread = std::thread([worker] {
      tls_worker = worker;
      for (;;) {
        try {
          worker->ctx.run();
          break;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "depot::http::Server: exception in I/O loop: %s\n", e.what());
        } catch (...) {
          std::fprintf(stderr, "depot::http::Server: unknown exception in I/O loop\n");
        }
      }
      tls_worker = nullptr;
    });
  }
}

void ServerCore::DoAccept() {
  Worker* target = workers_[next_worker_].get();
  next_worker_ = (next_worker_ + 1) % workers_.size();
  auto conn = std::make_shared<Connection>(this, target);
  acceptor_->async_accept(conn->socket(), [this, conn, target](const asio::error_code& ec) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (ec) {
      // E.g. out of file descriptors: back off briefly instead of spinning.
      accept_retry_timer_->expires_after(std::chrono::milliseconds(50));
      accept_retry_timer_->async_wait([this](const asio::error_code& e) {
        if (!e && acceptor_->is_open()) DoAccept();
      });
      return;
    }
    asio::error_code ignored;
    conn->socket().set_option(tcp::no_delay(true), ignored);
    const bool reject = active_.fetch_add(1, std::memory_order_relaxed) >= options_.max_connections;
    asio::post(target->ctx, [conn, reject] { conn->Start(reject); });
    DoAccept();
  });
}

void ServerCore::Stop() {
  if (tls_worker != nullptr && tls_worker->server == this) {
    // Joining the calling thread would deadlock; this is a contract violation (see the header).
    std::fprintf(stderr, "depot::http::Server::Stop() called from one of its own I/O threads\n");
    std::abort();
  }
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    {
      std::lock_guard<std::mutex> gate_lock(w->gate->mu);
      w->gate->ctx = nullptr;
    }
    asio::post(w->ctx, [this, w, first = i == 0] {
      asio::error_code ignored;
      if (first) {
        if (acceptor_) acceptor_->close(ignored);
        if (accept_retry_timer_) accept_retry_timer_->cancel();
      }
      w->sweep_timer.cancel();
      std::vector<std::shared_ptr<Connection>> open = w->connections;
      for (const auto& c : open) c->Close();
      w->ctx.stop();
    });
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    } else {
      // Never started (failed Start): run the shutdown task inline.
      w->ctx.restart();
      w->ctx.poll();
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Server.
// ---------------------------------------------------------------------------------------------

struct Server::Impl {
  Impl(ServerOptions options, Handler handler) : core(std::move(options), std::move(handler)) {}
  ServerCore core;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
  absl::Status status = impl->core.Listen();
  if (!status.ok()) return status;
  impl->core.Run();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->core.port(); }

void Server::Stop() { impl_->core.Stop(); }

}  // namespace depot::http
