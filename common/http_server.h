// HTTP/1.1 server for Depot's REST endpoints, built on standalone Asio and http-parser.
//
// The server owns a small pool of I/O threads, each running its own event loop; accepted
// connections are assigned to the loops round-robin. Requests are parsed incrementally and handed
// to a single user Handler together with a Responder callback. Responses may be produced on any
// thread, at any later time. Keep-alive and pipelining follow HTTP/1.1: requests on one connection
// are answered strictly in order, one at a time.
//
// Protocol errors never reach the handler; the server answers them itself with the project-wide
// JSON error body (see ErrorResponse) and closes the connection:
//   400 malformed request, 408 request not complete within read_timeout, 413 body too large,
//   431 request line + headers too large, 503 too many connections.
//
// Asio and http-parser are implementation details and are not included by this header.

#ifndef DEPOT_COMMON_HTTP_SERVER_H_
#define DEPOT_COMMON_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace depot::http {

// One parsed HTTP request. Plain value type; not synchronized.
struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw request target, e.g. "/v1/stock?sku=A%20B"
  std::string path;    // target before '?', not decoded
  std::string query;   // raw text after '?', may be empty
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in arrival order
  std::string body;    // de-chunked body (empty when the request has none)
  std::string remote;  // "ip:port" of the peer ("[v6]:port" for IPv6)

  // First header with this (case-insensitive) name, or "" when absent. The view points into
  // `headers` and is invalidated when the request is modified or destroyed.
  std::string_view Header(std::string_view name) const;
  // First query parameter with this name (names are compared after percent-decoding),
  // percent-decoded with '+' meaning space; nullopt when absent. "?a" and "?a=" both yield "".
  // Malformed escapes (e.g. "%zz") are kept literally.
  std::optional<std::string> Query(std::string_view name) const;
};

// Percent-decodes a path segment ("%2F" -> "/"; '+' stays '+'). Malformed escapes are kept
// literally.
std::string PercentDecode(std::string_view s);

// An HTTP response produced by a handler. Plain value type.
struct Response {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type header is sent
  std::string body;
  // Extra headers, written verbatim after the standard ones. Content-Length and Connection are
  // controlled by the server: a "Content-Length" entry is ignored, and "Connection: close" makes
  // the server close the connection after this response (any other Connection value is ignored).
  std::vector<std::pair<std::string, std::string>> headers;
};

// Builds the project-wide JSON error body
//   {"error":{"code":"INVALID_ARGUMENT","message":"..."}}
// (message JSON-escaped) with the HTTP status from HttpStatusFromCode(status.code()). The code
// string is absl's canonical upper-case name. An OK status is a caller bug and yields a 500 with
// code "INTERNAL".
Response ErrorResponse(const absl::Status& status);
// Same body shape with an explicit HTTP status and code string (used for 408, 413, 431, ...).
Response ErrorResponse(int http_status, std::string_view code, std::string_view message);
// InvalidArgument/OutOfRange/Cancelled 400, Unauthenticated 401, PermissionDenied 403,
// NotFound 404, AlreadyExists/FailedPrecondition/Aborted 409, ResourceExhausted 429,
// Unimplemented 501, Unavailable 503, DeadlineExceeded 504, OK 200, everything else 500.
int HttpStatusFromCode(absl::StatusCode code);
// Escapes `s` for use inside a JSON string literal and returns it without the surrounding quotes:
// '"' and '\\' are backslash-escaped, control characters become \n, \t, ... or \u00XX. Other
// bytes (including UTF-8 sequences) are copied unchanged.
std::string JsonEscape(std::string_view s);

// Delivers the response for one request. Call it exactly once, from any thread, at any time
// (also after the handler returned). It is cheap to copy; all copies share one state: calls after
// the first are ignored, and if the last copy is destroyed without a call the client gets a 500
// error (so a bug never hangs a client). Calling it after the connection closed or after the
// server stopped is harmless (the response is dropped).
using Responder = std::function<void(Response)>;
// Called on an I/O thread for every complete request. Must not block for long: hand slow work to
// another thread and call the responder later. If it throws, the client gets a 500 error (unless
// the responder was already called). Called concurrently from several I/O threads, so it must be
// thread-safe.
using Handler = std::function<void(Request&& request, Responder respond)>;

struct ServerOptions {
  std::string host = "127.0.0.1";  // IP literal or resolvable name
  uint16_t port = 0;               // 0 = pick a free port; see Server::port()
  int threads = 2;                 // I/O threads, >= 1
  // Request line + headers; above -> 431 and close. http-parser caps it at 80 KiB regardless.
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;  // above (Content-Length or streamed) -> 413 and close
  // From the first byte of a request to its last; exceeded -> 408 and close.
  std::chrono::milliseconds read_timeout{10000};
  // Keep-alive (or new) connection with no request in progress -> closed silently. Also bounds
  // how long writing one response to a client that does not read may take.
  std::chrono::milliseconds idle_timeout{60000};
  size_t max_connections = 4096;  // above -> 503 and close
};

// A running HTTP server. Thread-safe: port() and Stop() may be called from any thread except the
// server's own I/O threads (i.e. not from inside a Handler running synchronously): Stop() joins
// them, so calling it (or destroying the Server) there aborts the process with a message.
class Server {
 public:
  // Binds, listens and starts the I/O threads. Errors are returned as a Status:
  // InvalidArgument for bad options or an empty handler, Unavailable when the address cannot be
  // resolved, bound (e.g. port in use) or listened on.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler);

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // calls Stop()

  uint16_t port() const;  // the bound port (useful with port 0)

  // Stops accepting, closes all connections (in-flight requests are abandoned: their responders
  // become no-ops) and joins the I/O threads. Idempotent; returns promptly even with open
  // connections. Handler invocations already running are waited for.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace depot::http

#endif  // DEPOT_COMMON_HTTP_SERVER_H_
