// A byte-forwarding TCP proxy for integration tests: cuts one process off from another while
// both keep running (e.g. a depot-node's sync stream to depot-central).
//
// Contract:
// - Listens on 127.0.0.1:0 (port() says where) and forwards every accepted connection to
//   127.0.0.1:upstream_port, both directions, byte for byte (so gRPC's HTTP/2 passes through).
// - Cut() resets every live connection (both sides see ECONNRESET at once) and, until Restore(),
//   accepts and resets new ones at once: the client sees a refused link and retries with its
//   own backoff. Cut() returns after every live connection was closed.
// - Restore() forwards new connections again.
// - One thread (started by the constructor, joined by the destructor) does all the I/O with
//   poll() over non-blocking sockets; Cut/Restore/port/stats are thread-safe.
// - Failures to set up the listening socket abort the test (REQUIRE in the constructor).
// Header-only (inline) like cluster_util.h; POSIX only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace depot::testing {

class TcpProxy {
 public:
  explicit TcpProxy(uint16_t upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = Loopback(0);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    REQUIRE(::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) == 0);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TcpProxy() {
    stop_ = true;
    Wake();
    thread_.join();
    for (Link& l : links_) Close(l, /*reset=*/false);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void Cut() {
    std::unique_lock<std::mutex> lock(mu_);
    cut_ = true;
    const uint64_t want = ++cut_requests_;
    Wake();
    cv_.wait(lock, [&] { return cuts_done_ >= want; });
  }
  void Restore() {
    std::lock_guard<std::mutex> lock(mu_);
    cut_ = false;
  }
  // Connections forwarded since start, and connections refused while cut.
  uint64_t forwarded() const { return forwarded_; }
  uint64_t refused() const { return refused_; }

 private:
  static constexpr size_t kMaxPending = 1 << 20;  // stop reading a side beyond this backlog

  // A client connection and its upstream connection; pending[i] waits to be written to fd[i].
  struct Link {
    int fd[2] = {-1, -1};
    std::string pending[2];
    bool dead = false;
  };

  static sockaddr_in Loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  void Wake() {
    const char c = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
  }
  // reset: SO_LINGER 0, so the peer gets RST at once (a dead link, not an orderly goodbye).
  static void CloseFd(int fd, bool reset) {
    if (fd < 0) return;
    if (reset) {
      linger l{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(fd);
  }
  static void Close(Link& l, bool reset) {
    CloseFd(l.fd[0], reset);
    CloseFd(l.fd[1], reset);
    l.fd[0] = l.fd[1] = -1;
    l.dead = true;
  }
  bool IsCut() {
    std::lock_guard<std::mutex> lock(mu_);
    return cut_;
  }

  void Accept() {
    for (;;) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return;  // EAGAIN (or a transient error: poll tells us again)
      if (IsCut()) {
        CloseFd(client, /*reset=*/true);
        ++refused_;
        continue;
      }
      // Loopback: a blocking connect answers at once (refused when upstream is down).
      int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr = Loopback(upstream_port_);
      if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (up >= 0) ::close(up);
        CloseFd(client, /*reset=*/true);
        continue;
      }
      ::fcntl(up, F_SETFL, ::fcntl(up, F_GETFL) | O_NONBLOCK);
      int one = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      Link l;
      l.fd[0] = client;
      l.fd[1] = up;
      links_.push_back(std::move(l));
      ++forwarded_;
    }
  }

  // Reads what fd[side] has into pending[1 - side]; false on EOF or error.
  static bool ReadSide(Link& l, int side) {
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = ::read(l.fd[side], buf, sizeof buf);
      if (n > 0) {
        l.pending[1 - side].append(buf, static_cast<size_t>(n));
        if (l.pending[1 - side].size() >= kMaxPending) return true;
        continue;
      }
      if (n == 0) return false;
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
  }
  // Writes pending[side] to fd[side]; false on error.
  static bool WriteSide(Link& l, int side) {
    std::string& p = l.pending[side];
    while (!p.empty()) {
      ssize_t n = ::send(l.fd[side], p.data(), p.size(), MSG_NOSIGNAL);
      if (n > 0) {
        p.erase(0, static_cast<size_t>(n));
        continue;
      }
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
    return true;
  }

  void Loop() {
    std::vector<pollfd> fds;
    std::vector<Link*> owner;  // per pollfd from index 2: the link (side = parity)
    while (!stop_) {
      fds.clear();
      owner.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (Link& l : links_) {
        for (int side = 0; side < 2; ++side) {
          short events = 0;
          if (l.pending[1 - side].size() < kMaxPending) events |= POLLIN;
          if (!l.pending[side].empty()) events |= POLLOUT;
          fds.push_back({l.fd[side], events, 0});
          owner.push_back(&l);
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents) {
        char buf[64];
        while (::read(wake_[0], buf, sizeof buf) > 0) {
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (cuts_done_ < cut_requests_) {
          for (Link& l : links_) Close(l, /*reset=*/true);
          links_.clear();
          owner.clear();
          cuts_done_ = cut_requests_;
          cv_.notify_all();
          continue;
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        Link& l = *owner[i - 2];
        const int side = static_cast<int>((i - 2) % 2);
        if (l.dead) continue;
        const short re = fds[i].revents;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
          if (!ReadSide(l, side)) l.dead = true;
        }
        if (!l.dead && !WriteSide(l, 1 - side)) l.dead = true;
        if (!l.dead && (re & POLLOUT) && !WriteSide(l, side)) l.dead = true;
      }
      for (auto it = links_.begin(); it != links_.end();) {
        if (it->dead) {
          // Hand over what the closing side still sent, then close both ends.
          for (int side = 0; side < 2; ++side) {
            if (it->fd[side] >= 0) WriteSide(*it, side);
          }
          Close(*it, /*reset=*/false);
          it = links_.erase(it);
        } else {
          ++it;
        }
      }
      if (fds[1].revents) Accept();
    }
  }

  const uint16_t upstream_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> forwarded_{0}, refused_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool cut_ = false;
  uint64_t cut_requests_ = 0, cuts_done_ = 0;
  std::list<Link> links_;  // loop thread only (std::list: pointers stay valid across push_back)
  std::thread thread_;
};

}  // namespace depot::testing
