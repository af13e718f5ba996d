// Tests for common/http_server and common/http_client over real sockets on 127.0.0.1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "common/http_client.h"
#include "common/http_server.h"

namespace depot::http {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Server> MustStart(ServerOptions options, Handler handler) {
  auto server = Server::Start(std::move(options), std::move(handler));
  REQUIRE(server.ok());
  return std::move(server).value();
}

std::string Url(const Server& server, const std::string& target) {
  return absl::StrCat("http://127.0.0.1:", server.port(), target);
}

// Echoes the request as "METHOD PATH|QUERY|BODY".
void EchoHandler(Request&& req, Responder respond) {
  Response r;
  r.content_type = "text/plain";
  r.body = absl::StrCat(req.method, " ", req.path, "|", req.query, "|", req.body);
  respond(std::move(r));
}

// A blocking client socket with a receive timeout, for speaking raw HTTP.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port, milliseconds recv_timeout = milliseconds(5000)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(recv_timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((recv_timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until the peer closes (returns true) or the receive timeout/error (returns false).
  bool ReadUntilClose(std::string* out) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      out->append(buf, static_cast<size_t>(n));
    }
  }

  // Reads up to the end of a response head (for HEAD requests). Returns "" on timeout/close.
  std::string ReadHead() {
    for (;;) {
      size_t head_end = pending_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = pending_.substr(0, head_end + 4);
        pending_.erase(0, head_end + 4);
        return head;
      }
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return "";
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

  // Reads exactly one response with a Content-Length. Returns "" on timeout/close.
  std::string ReadResponse() {
    for (;;) {
      size_t head_end = pending_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t length = 0;
        size_t pos = pending_.find("Content-Length: ");
        if (pos != std::string::npos && pos < head_end) {
          length = std::stoul(pending_.substr(pos + 16));
        }
        size_t total = head_end + 4 + length;
        if (pending_.size() >= total) {
          std::string response = pending_.substr(0, total);
          pending_.erase(0, total);
          return response;
        }
      }
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return "";
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string pending_;
};

std::string BodyOf(const std::string& response) {
  size_t pos = response.find("\r\n\r\n");
  return pos == std::string::npos ? "" : response.substr(pos + 4);
}

// Runs callbacks on background threads and joins them on destruction.
class Workers {
 public:
  ~Workers() {
    for (auto& t : threads_) t.join();
  }
  void Run(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(std::move(fn));
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

TEST_CASE("GET and POST round trip through the curl client", "[http]") {
  auto server = MustStart({}, [](Request&& req, Responder respond) {
    Response r;
    r.status = req.method == "POST" ? 201 : 200;
    r.body =
        absl::StrCat(R"({"method":")", req.method, R"(","path":")", req.path, R"(","body":")",
                     JsonEscape(req.body), R"(","ct":")", std::string(req.Header("Content-Type")),
                     R"(","x":")", std::string(req.Header("x-depot-test")), "\"}");
    r.headers.push_back({"X-Reply", "yes"});
    respond(std::move(r));
  });
  auto client = NewCurlClient(milliseconds(5000));

  auto get = client->Send("GET", Url(*server, "/v1/stock"), "", {{"X-Depot-Test", "abc"}});
  REQUIRE(get.ok());
  CHECK(get->status == 200);
  CHECK(get->content_type == "application/json");
  CHECK(get->body == R"({"method":"GET","path":"/v1/stock","body":"","ct":"","x":"abc"})");

  auto post = client->Send("POST", Url(*server, "/v1/items"), R"({"sku":"A"})");
  REQUIRE(post.ok());
  CHECK(post->status == 201);
  CHECK(post->body == R"({"method":"POST","path":"/v1/items","body":"{\"sku\":\"A\"}",)"
                      R"("ct":"application/json","x":""})");

  auto put =
      client->Send("PUT", Url(*server, "/v1/items/1"), "x=1", {{"Content-Type", "text/plain"}});
  REQUIRE(put.ok());
  CHECK(put->body ==
        R"({"method":"PUT","path":"/v1/items/1","body":"x=1","ct":"text/plain","x":""})");

  auto del = client->Send("DELETE", Url(*server, "/v1/items/1"));
  REQUIRE(del.ok());
  CHECK(del->body == R"({"method":"DELETE","path":"/v1/items/1","body":"","ct":"","x":""})");
}

TEST_CASE("client reports transport failures", "[http]") {
  // Find a port with nothing listening: start and stop a server.
  uint16_t port;
  {
    auto server = MustStart({}, EchoHandler);
    port = server->port();
  }
  auto client = NewCurlClient(milliseconds(2000));
  auto result = client->Send("GET", absl::StrCat("http://127.0.0.1:", port, "/"));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kUnavailable);

  // A server that never answers -> deadline exceeded.
  Workers workers;
  std::mutex mu;
  std::vector<Responder> parked;
  auto server = MustStart({}, [&](Request&&, Responder respond) {
    std::lock_guard<std::mutex> lock(mu);
    parked.push_back(std::move(respond));
  });
  auto slow_client = NewCurlClient(milliseconds(200));
  auto slow = slow_client->Send("GET", Url(*server, "/never"));
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.status().code() == absl::StatusCode::kDeadlineExceeded);
  server->Stop();
  std::lock_guard<std::mutex> lock(mu);
  parked.clear();  // responders of a stopped server are harmless
}

TEST_CASE("keep-alive: several requests over one connection", "[http]") {
  auto server = MustStart({}, [](Request&& req, Responder respond) {
    Response r;
    r.body = req.remote;
    respond(std::move(r));
  });

  SECTION("curl reuses its connection") {
    auto client = NewCurlClient(milliseconds(5000));
    std::string first_remote;
    for (int i = 0; i < 5; ++i) {
      auto r = client->Send("GET", Url(*server, "/whoami"));
      REQUIRE(r.ok());
      REQUIRE(r->status == 200);
      if (i == 0) first_remote = r->body;
      CHECK(r->body == first_remote);  // same peer port: same connection
    }
    CHECK(first_remote.rfind("127.0.0.1:", 0) == 0);
  }

  SECTION("raw socket, sequential requests") {
    RawSocket sock(server->port());
    std::string remote;
    for (int i = 0; i < 3; ++i) {
      REQUIRE(sock.Send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
      std::string response = sock.ReadResponse();
      REQUIRE(response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
      CHECK(response.find("Connection: keep-alive\r\n") != std::string::npos);
      if (i == 0) remote = BodyOf(response);
      CHECK(BodyOf(response) == remote);
    }
  }

  SECTION("Connection: close is honoured") {
    RawSocket sock(server->port());
    REQUIRE(sock.Send("GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    std::string all;
    REQUIRE(sock.ReadUntilClose(&all));
    CHECK(all.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(all.find("Connection: close\r\n") != std::string::npos);
  }

  SECTION("HTTP/1.0 without keep-alive closes") {
    RawSocket sock(server->port());
    REQUIRE(sock.Send("GET /x HTTP/1.0\r\n\r\n"));
    std::string all;
    REQUIRE(sock.ReadUntilClose(&all));
    CHECK(all.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  }
}

TEST_CASE("pipelined requests are answered in order", "[http]") {
  Workers workers;
  auto server = MustStart({}, [&workers](Request&& req, Responder respond) {
    // The first request is answered late from another thread; order must still hold.
    const bool slow = req.path == "/1";
    std::string body = absl::StrCat(req.path, ":", req.body);
    auto reply = [respond = std::move(respond), body, slow] {
      if (slow) std::this_thread::sleep_for(milliseconds(50));
      Response r;
      r.body = body;
      respond(std::move(r));
    };
    if (slow) {
      workers.Run(std::move(reply));
    } else {
      reply();
    }
  });
  RawSocket sock(server->port());
  REQUIRE(sock.Send(
      "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
      "POST /3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
  CHECK(BodyOf(sock.ReadResponse()) == "/1:");
  CHECK(BodyOf(sock.ReadResponse()) == "/2:hello");
  CHECK(BodyOf(sock.ReadResponse()) == "/3:abc");
}

TEST_CASE("handler answering later from another thread", "[http]") {
  Workers workers;
  auto server = MustStart({}, [&workers](Request&& req, Responder respond) {
    workers.Run([respond = std::move(respond), body = req.body] {
      std::this_thread::sleep_for(milliseconds(30));
      Response r;
      r.body = absl::StrCat("late:", body);
      respond(std::move(r));
    });
  });
  auto client = NewCurlClient(milliseconds(5000));
  for (int i = 0; i < 3; ++i) {
    auto r = client->Send("POST", Url(*server, "/slow"), std::to_string(i));
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(r->body == absl::StrCat("late:", i));
  }
}

TEST_CASE("concurrent clients are all answered correctly", "[http]") {
  ServerOptions options;
  options.threads = 2;
  auto server = MustStart(options, EchoHandler);
  constexpr int kThreads = 8;
  constexpr int kRequests = 200;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto client = NewCurlClient(milliseconds(10000));
      for (int i = 0; i < kRequests; ++i) {
        std::string body = absl::StrCat("t", t, "-", i);
        auto r = client->Send("POST", Url(*server, absl::StrCat("/echo?n=", i)), body);
        if (r.ok() && r->status == 200 && r->body == absl::StrCat("POST /echo|n=", i, "|", body)) {
          ok.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok.load() == kThreads * kRequests);
}

TEST_CASE("oversized body is rejected with 413", "[http]") {
  ServerOptions options;
  options.max_body_bytes = 1024;
  std::atomic<int> calls{0};
  auto server = MustStart(options, [&calls](Request&& req, Responder respond) {
    calls.fetch_add(1);
    EchoHandler(std::move(req), std::move(respond));
  });

  SECTION("by Content-Length") {
    auto client = NewCurlClient(milliseconds(5000));
    auto r = client->Send("POST", Url(*server, "/big"), std::string(4096, 'x'));
    REQUIRE(r.ok());
    CHECK(r->status == 413);
    CHECK(r->content_type == "application/json");
    CHECK(r->body ==
          R"({"error":{"code":"RESOURCE_EXHAUSTED","message":"request body exceeds 1024 bytes"}})");
    // A body within the limit still works (on a new connection).
    auto small = client->Send("POST", Url(*server, "/small"), std::string(1024, 'y'));
    REQUIRE(small.ok());
    CHECK(small->status == 200);
  }

  SECTION("streamed chunked body") {
    RawSocket sock(server->port());
    std::string request = "POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) absl::StrAppend(&request, "200\r\n", std::string(512, 'z'), "\r\n");
    request += "0\r\n\r\n";
    REQUIRE(sock.Send(request));
    std::string all;
    REQUIRE(sock.ReadUntilClose(&all));
    CHECK(all.rfind("HTTP/1.1 413 Payload Too Large\r\n", 0) == 0);
    CHECK(all.find("Connection: close\r\n") != std::string::npos);
    CHECK(BodyOf(all).find(R"("code":"RESOURCE_EXHAUSTED")") != std::string::npos);
  }
  CHECK(calls.load() <= 1);
}

TEST_CASE("oversized headers are rejected with 431", "[http]") {
  ServerOptions options;
  options.max_header_bytes = 1024;
  auto server = MustStart(options, EchoHandler);
  auto client = NewCurlClient(milliseconds(5000));
  auto r = client->Send("GET", Url(*server, "/"), "", {{"X-Big", std::string(2000, 'h')}});
  REQUIRE(r.ok());
  CHECK(r->status == 431);
  CHECK(r->body.find(R"({"error":{"code":"RESOURCE_EXHAUSTED","message":")") == 0);

  // Many small headers count too.
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 100; ++i) many.push_back({absl::StrCat("X-H", i), "0123456789"});
  auto r2 = client->Send("GET", Url(*server, "/"), "", many);
  REQUIRE(r2.ok());
  CHECK(r2->status == 431);

  // A long target too.
  auto r3 = client->Send("GET", Url(*server, absl::StrCat("/", std::string(2000, 'p'))));
  REQUIRE(r3.ok());
  CHECK(r3->status == 431);

  auto fine = client->Send("GET", Url(*server, "/"), "", {{"X-Small", "1"}});
  REQUIRE(fine.ok());
  CHECK(fine->status == 200);
}

TEST_CASE("garbage request gets 400 and the connection is closed", "[http]") {
  auto server = MustStart({}, EchoHandler);
  RawSocket sock(server->port());
  REQUIRE(sock.Send("THIS IS NOT HTTP\r\n\r\n"));
  std::string all;
  REQUIRE(sock.ReadUntilClose(&all));
  CHECK(all.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
  CHECK(all.find("Content-Type: application/json\r\n") != std::string::npos);
  CHECK(all.find("Connection: close\r\n") != std::string::npos);
  CHECK(BodyOf(all).rfind(
            R"({"error":{"code":"INVALID_ARGUMENT","message":"malformed HTTP request: )", 0) == 0);

  // A broken request after a good one on the same connection.
  RawSocket sock2(server->port());
  REQUIRE(sock2.Send("GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /bad HTTP/1.1\r\nBad Header\r\n\r\n"));
  std::string all2;
  REQUIRE(sock2.ReadUntilClose(&all2));
  CHECK(all2.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(all2.find("HTTP/1.1 400 Bad Request\r\n") != std::string::npos);
}

TEST_CASE("half-sent request times out with 408 without blocking others", "[http]") {
  ServerOptions options;
  options.read_timeout = milliseconds(200);
  options.threads = 1;  // the slow client shares the only I/O thread with the others
  auto server = MustStart(options, EchoHandler);

  RawSocket slow(server->port());
  const auto start = Clock::now();
  REQUIRE(slow.Send("GET /slow HTTP/1.1\r\nHost: t\r\nX-Partial: "));

  // Meanwhile, other clients are served promptly.
  auto client = NewCurlClient(milliseconds(5000));
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    auto r = client->Send("GET", Url(*server, "/fast"));
    REQUIRE(r.ok());
    CHECK(r->status == 200);
    CHECK(Clock::now() - t0 < milliseconds(150));
  }

  std::string all;
  REQUIRE(slow.ReadUntilClose(&all));  // the server closes the connection
  const auto elapsed = Clock::now() - start;
  CHECK(all.rfind("HTTP/1.1 408 Request Timeout\r\n", 0) == 0);
  CHECK(all.find("Connection: close\r\n") != std::string::npos);
  CHECK(BodyOf(all).find(R"("code":"DEADLINE_EXCEEDED")") != std::string::npos);
  CHECK(elapsed >= milliseconds(190));
  CHECK(elapsed < milliseconds(2000));
}

TEST_CASE("idle keep-alive connection is closed silently", "[http]") {
  ServerOptions options;
  options.idle_timeout = milliseconds(100);
  auto server = MustStart(options, EchoHandler);
  RawSocket sock(server->port());
  REQUIRE(sock.Send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(sock.ReadResponse().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  const auto start = Clock::now();
  std::string rest;
  REQUIRE(sock.ReadUntilClose(&rest));
  CHECK(rest.empty());
  CHECK(Clock::now() - start < milliseconds(2000));
}

TEST_CASE("query parameters are percent-decoded", "[http]") {
  Request req;
  req.query = "sku=A%20B&name=x+y&empty=&flag&bad=%zz&utf=%C3%A9&dup=1&dup=2&a%26b=c%3Dd";
  CHECK(req.Query("sku") == "A B");
  CHECK(req.Query("name") == "x y");
  CHECK(req.Query("empty") == "");
  CHECK(req.Query("flag") == "");
  CHECK(req.Query("bad") == "%zz");
  CHECK(req.Query("utf") == "\xC3\xA9");
  CHECK(req.Query("dup") == "1");
  CHECK(req.Query("a&b") == "c=d");
  CHECK_FALSE(req.Query("missing").has_value());

  auto server = MustStart({}, [](Request&& r, Responder respond) {
    Response resp;
    resp.body = absl::StrCat(r.path, "|", r.Query("sku").value_or("<none>"), "|",
                             r.Query("q").value_or("<none>"), "|", r.target);
    respond(std::move(resp));
  });
  auto client = NewCurlClient(milliseconds(5000));
  auto r = client->Send("GET", Url(*server, "/v1/stock?sku=A%20B&q=1+2"));
  REQUIRE(r.ok());
  CHECK(r->body == "/v1/stock|A B|1 2|/v1/stock?sku=A%20B&q=1+2");
}

TEST_CASE("handler errors become 500 responses", "[http]") {
  Workers workers;
  auto server = MustStart({}, [&workers](Request&& req, Responder respond) {
    if (req.path == "/throw") throw std::runtime_error("boom");
    if (req.path == "/drop") return;  // responder destroyed without a call
    if (req.path == "/drop-later") {
      workers.Run([r = std::move(respond)]() mutable {
        std::this_thread::sleep_for(milliseconds(20));
        Responder gone = std::move(r);
      });
      return;
    }
    if (req.path == "/twice") {
      Responder copy = respond;
      respond(Response{200, "text/plain", "first", {}});
      copy(Response{200, "text/plain", "second", {}});
      return;
    }
    if (req.path == "/respond-then-throw") {
      respond(Response{200, "text/plain", "fine", {}});
      throw std::runtime_error("after");
    }
    respond(ErrorResponse(absl::NotFoundError("no such \"thing\"")));
  });
  auto client = NewCurlClient(milliseconds(5000));

  auto thrown = client->Send("GET", Url(*server, "/throw"));
  REQUIRE(thrown.ok());
  CHECK(thrown->status == 500);
  CHECK(thrown->body.rfind(R"({"error":{"code":"INTERNAL","message":")", 0) == 0);

  auto dropped = client->Send("GET", Url(*server, "/drop"));
  REQUIRE(dropped.ok());
  CHECK(dropped->status == 500);
  CHECK(dropped->body.rfind(R"({"error":{"code":"INTERNAL")", 0) == 0);

  auto dropped_later = client->Send("GET", Url(*server, "/drop-later"));
  REQUIRE(dropped_later.ok());
  CHECK(dropped_later->status == 500);

  auto twice = client->Send("GET", Url(*server, "/twice"));
  REQUIRE(twice.ok());
  CHECK(twice->body == "first");

  auto then_throw = client->Send("GET", Url(*server, "/respond-then-throw"));
  REQUIRE(then_throw.ok());
  CHECK(then_throw->status == 200);
  CHECK(then_throw->body == "fine");

  auto not_found = client->Send("GET", Url(*server, "/other"));
  REQUIRE(not_found.ok());
  CHECK(not_found->status == 404);
  CHECK(not_found->body == R"({"error":{"code":"NOT_FOUND","message":"no such \"thing\""}})");

  // The connection is still usable after all of this.
  auto again = client->Send("GET", Url(*server, "/throw"));
  REQUIRE(again.ok());
  CHECK(again->status == 500);
}

TEST_CASE("Stop() with open connections returns promptly", "[http]") {
  std::mutex mu;
  std::vector<Responder> parked;
  std::condition_variable cv;
  auto server = MustStart({}, [&](Request&&, Responder respond) {
    std::lock_guard<std::mutex> lock(mu);
    parked.push_back(std::move(respond));
    cv.notify_all();
  });
  RawSocket idle(server->port());
  RawSocket partial(server->port());
  REQUIRE(partial.Send("GET /partial HTTP/1.1\r\n"));
  RawSocket in_flight(server->port());
  REQUIRE(in_flight.Send("GET /wait1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  RawSocket in_flight2(server->port());
  REQUIRE(in_flight2.Send("GET /wait2 HTTP/1.1\r\nHost: t\r\n\r\n"));
  {
    std::unique_lock<std::mutex> lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return parked.size() == 2; }));
  }

  const auto start = Clock::now();
  server->Stop();
  CHECK(Clock::now() - start < milliseconds(1000));
  server->Stop();  // idempotent

  std::string rest;
  CHECK(idle.ReadUntilClose(&rest));
  CHECK(rest.empty());
  std::string rest2;
  CHECK(in_flight.ReadUntilClose(&rest2));

  std::string rest3;
  CHECK(partial.ReadUntilClose(&rest3));
  CHECK(rest3.empty());

  // Responding after Stop(), and dropping a responder after the server is gone, are harmless.
  std::lock_guard<std::mutex> lock(mu);
  parked[0](Response{});
  server.reset();
  parked.clear();
}

TEST_CASE("server rejects connections above max_connections with 503", "[http]") {
  ServerOptions options;
  options.max_connections = 1;
  auto server = MustStart(options, EchoHandler);
  RawSocket first(server->port());
  REQUIRE(first.Send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(first.ReadResponse().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  RawSocket second(server->port());
  std::string all;
  REQUIRE(second.ReadUntilClose(&all));
  CHECK(all.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(BodyOf(all).find(R"("code":"UNAVAILABLE")") != std::string::npos);
}

TEST_CASE("HEAD responses carry no body; Expect: 100-continue is answered", "[http]") {
  auto server = MustStart({}, EchoHandler);
  RawSocket sock(server->port());
  REQUIRE(sock.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string head = sock.ReadHead();
  REQUIRE(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  // Content-Length is that of the omitted body "HEAD /h||".
  CHECK(head.find("Content-Length: 9\r\n") != std::string::npos);
  // No body follows: the next response starts right after the head.
  REQUIRE(sock.Send("GET /g HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(BodyOf(sock.ReadResponse()) == "GET /g||");

  RawSocket sock2(server->port());
  REQUIRE(sock2.Send(
      "POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  CHECK(sock2.ReadResponse() == "HTTP/1.1 100 Continue\r\n\r\n");  // before the body is sent
  REQUIRE(sock2.Send("abc"));
  std::string final_response = sock2.ReadResponse();
  CHECK(BodyOf(final_response) == "POST /c||abc");
}

TEST_CASE("Start reports a port in use and bad options", "[http]") {
  auto first = MustStart({}, EchoHandler);
  ServerOptions options;
  options.port = first->port();
  auto second = Server::Start(options, EchoHandler);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == absl::StatusCode::kUnavailable);

  ServerOptions bad;
  bad.threads = 0;
  CHECK(Server::Start(bad, EchoHandler).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Server::Start({}, nullptr).status().code() == absl::StatusCode::kInvalidArgument);
  ServerOptions bad_host;
  bad_host.host = "no-such-host.invalid";
  CHECK_FALSE(Server::Start(bad_host, EchoHandler).ok());
}

TEST_CASE("error helpers", "[http]") {
  CHECK(JsonEscape("a\"b\\c\n\t\x01") == "a\\\"b\\\\c\\n\\t\\u0001");
  CHECK(JsonEscape("caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(HttpStatusFromCode(absl::StatusCode::kInvalidArgument) == 400);
  CHECK(HttpStatusFromCode(absl::StatusCode::kOutOfRange) == 400);
  CHECK(HttpStatusFromCode(absl::StatusCode::kCancelled) == 400);
  CHECK(HttpStatusFromCode(absl::StatusCode::kUnauthenticated) == 401);
  CHECK(HttpStatusFromCode(absl::StatusCode::kPermissionDenied) == 403);
  CHECK(HttpStatusFromCode(absl::StatusCode::kNotFound) == 404);
  CHECK(HttpStatusFromCode(absl::StatusCode::kAlreadyExists) == 409);
  CHECK(HttpStatusFromCode(absl::StatusCode::kFailedPrecondition) == 409);
  CHECK(HttpStatusFromCode(absl::StatusCode::kAborted) == 409);
  CHECK(HttpStatusFromCode(absl::StatusCode::kResourceExhausted) == 429);
  CHECK(HttpStatusFromCode(absl::StatusCode::kUnimplemented) == 501);
  CHECK(HttpStatusFromCode(absl::StatusCode::kUnavailable) == 503);
  CHECK(HttpStatusFromCode(absl::StatusCode::kDeadlineExceeded) == 504);
  CHECK(HttpStatusFromCode(absl::StatusCode::kInternal) == 500);
  CHECK(HttpStatusFromCode(absl::StatusCode::kDataLoss) == 500);
  CHECK(HttpStatusFromCode(absl::StatusCode::kUnknown) == 500);

  Response r = ErrorResponse(absl::InvalidArgumentError("bad \"sku\"\n"));
  CHECK(r.status == 400);
  CHECK(r.content_type == "application/json");
  CHECK(r.body == R"({"error":{"code":"INVALID_ARGUMENT","message":"bad \"sku\"\n"}})");
  Response r2 = ErrorResponse(431, "RESOURCE_EXHAUSTED", "too big");
  CHECK(r2.status == 431);
  CHECK(r2.body == R"({"error":{"code":"RESOURCE_EXHAUSTED","message":"too big"}})");
  CHECK(ErrorResponse(absl::OkStatus()).status == 500);

  Request req;
  req.headers = {{"content-type", "text/plain"}, {"x-a", "1"}, {"x-a", "2"}};
  CHECK(req.Header("Content-Type") == "text/plain");
  CHECK(req.Header("X-A") == "1");
  CHECK(req.Header("missing").empty());
}

}  // namespace
}  // namespace depot::http
