// A real loopback HTTP/1.1 server for tests whose replies the test decides:
// well-formed answers, garbage, truncated bodies, slow drips, closed sockets,
// or a request forwarded to a real service (a proxy that can hold, drop or
// inspect traffic). One thread per connection with blocking sockets, so a
// handler may block (e.g. hold a request until the test releases it).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "flight/base/strings.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas::testing {

struct FakeRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// What the server does with one request: write `bytes` (in pieces of
// `drip_bytes` with `drip_gap` between them when drip_bytes > 0), then close
// the connection if `close`.
struct FakeReply {
  std::string bytes;
  bool close = false;
  size_t drip_bytes = 0;
  std::chrono::milliseconds drip_gap{0};
};

inline FakeReply http_reply(int status, const std::string& body,
                            const std::string& content_type = "application/json") {
  FakeReply r;
  r.bytes = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + content_type +
            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return r;
}

// The request sent on to a real service on `port`; its response comes back as is.
inline FakeReply forward(int port, const FakeRequest& req) {
  std::vector<std::string> headers;
  for (const auto& [k, v] : req.headers) {
    if (k == "host" || k == "content-length" || k == "content-type" || k == "authorization")
      continue;
    headers.push_back(k + ": " + v);
  }
  std::string token;
  if (auto it = req.headers.find("authorization"); it != req.headers.end()) {
    token = it->second.size() > 7 ? it->second.substr(7) : "";
  }
  RawConn c(port, 120);
  auto r = c.roundtrip(http_request(req.method, req.target, token, req.body, headers));
  if (!r) return FakeReply{"", true};
  return http_reply(r->status, r->body);
}

class FakeHttpServer {
 public:
  using Handler = std::function<FakeReply(const FakeRequest&)>;

  explicit FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      ADD_FAILURE() << "fake server cannot listen";
      return;
    }
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~FakeHttpServer() { stop(); }

  // Closes the listener and every connection, joins every thread.
  void stop() {
    if (stopped_.exchange(true)) return;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t requests() const { return requests_.load(); }

 private:
  void accept_loop() {
    while (!stopped_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) {
        if (stopped_) return;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) {
        ::close(fd);
        return;
      }
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  // Reads one request (Content-Length framing); false on close or garbage.
  static bool read_request(int fd, std::string& buf, FakeRequest* req) {
    auto fill = [&] {
      char tmp[65536];
      ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    };
    while (buf.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) return false;
    }
    size_t head_end = buf.find("\r\n\r\n");
    auto lines = split(buf.substr(0, head_end), '\n');
    if (lines.empty()) return false;
    auto first = split(trim(lines[0]), ' ');
    if (first.size() < 2) return false;
    req->method = first[0];
    req->target = first[1];
    for (size_t i = 1; i < lines.size(); ++i) {
      auto colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      req->headers[to_lower(trim(lines[i].substr(0, colon)))] = trim(lines[i].substr(colon + 1));
    }
    size_t len = 0;
    if (auto it = req->headers.find("content-length"); it != req->headers.end()) {
      len = std::stoul(it->second);
    }
    while (buf.size() < head_end + 4 + len) {
      if (!fill()) return false;
    }
    req->body = buf.substr(head_end + 4, len);
    buf.erase(0, head_end + 4 + len);
    return true;
  }

  static bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  void serve(int fd) {
    std::string buf;
    while (!stopped_) {
      FakeRequest req;
      if (!read_request(fd, buf, &req)) break;
      ++requests_;
      FakeReply reply = handler_(req);
      bool ok = true;
      if (reply.drip_bytes == 0) {
        ok = write_all(fd, reply.bytes.data(), reply.bytes.size());
      } else {
        for (size_t off = 0; ok && off < reply.bytes.size() && !stopped_; off += reply.drip_bytes) {
          ok = write_all(fd, reply.bytes.data() + off,
                         std::min(reply.drip_bytes, reply.bytes.size() - off));
          std::this_thread::sleep_for(reply.drip_gap);  // the point of a drip
        }
      }
      if (!ok || reply.close) break;
    }
    ::shutdown(fd, SHUT_RDWR);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& f : fds_) {
      if (f == fd) f = -1;
    }
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

}  // namespace flight::faas::testing
