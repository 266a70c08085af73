// Helpers for the faas suites: a raw-socket HTTP client (for edge cases a
// real client library would refuse to send) and a REST cluster made of real
// `flight serve` / `flight endpoint` processes on loopback.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flight/base/ids.h"
#include "flight/base/strings.h"
#include "tests/support/process.h"

namespace flight::faas::testing {

using flight::testing::RedisServer;
using flight::testing::Subprocess;
using flight::testing::TempDir;
using flight::testing::wait_until;

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One TCP connection; requests are written verbatim.
class RawConn {
 public:
  explicit RawConn(int port, double recv_timeout_s = 15) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    timeval tv{
        static_cast<time_t>(recv_timeout_s),
        static_cast<suseconds_t>((recv_timeout_s - static_cast<long>(recv_timeout_s)) * 1e6)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  bool send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response (Content-Length framing). nullopt on close/timeout.
  std::optional<RawResponse> read_response() {
    while (buf_.find("\r\n\r\n") == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    size_t head_end = buf_.find("\r\n\r\n");
    std::string head = buf_.substr(0, head_end);
    RawResponse r;
    auto lines = split(head, '\n');
    if (lines.empty() || lines[0].size() < 12) return std::nullopt;
    r.status = std::stoi(lines[0].substr(9, 3));
    for (size_t i = 1; i < lines.size(); ++i) {
      auto colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      r.headers[to_lower(trim(lines[i].substr(0, colon)))] = trim(lines[i].substr(colon + 1));
    }
    size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buf_.size() < head_end + 4 + len) {
      if (!fill()) return std::nullopt;
    }
    r.body = buf_.substr(head_end + 4, len);
    buf_.erase(0, head_end + 4 + len);
    return r;
  }

  // True when the peer closes the connection (EOF or reset) before the timeout.
  bool closed_by_peer() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  std::optional<RawResponse> roundtrip(const std::string& request) {
    if (!send_all(request)) return std::nullopt;
    return read_response();
  }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

inline std::string http_request(const std::string& method, const std::string& target,
                                const std::string& token, const std::string& body = "",
                                const std::vector<std::string>& headers = {}) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST") {
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

// One request on a fresh connection.
inline RawResponse request(int port, const std::string& method, const std::string& target,
                           const std::string& token, const std::string& body = "",
                           const std::vector<std::string>& headers = {}) {
  RawConn c(port);
  EXPECT_TRUE(c.connected()) << "cannot connect to 127.0.0.1:" << port;
  auto r = c.roundtrip(http_request(method, target, token, body, headers));
  EXPECT_TRUE(r.has_value()) << method << " " << target << ": no response";
  return r.value_or(RawResponse{});
}

// `flight serve` + `flight endpoint` processes sharing a token, on loopback.
class RestCluster {
 public:
  explicit RestCluster(std::vector<std::string> serve_args = {}) : token_(random_hex(32)) {
    std::ofstream(dir_.file("token")) << token_ << "\n";
    start_service(std::move(serve_args));
  }

  void start_service(std::vector<std::string> serve_args) {
    serve_args_ = serve_args;
    std::vector<std::string> argv = {FLIGHT_BINARY,  "--log-level",     "warn",
                                     "serve",        "--port",          std::to_string(port_),
                                     "--token-file", dir_.file("token")};
    argv.insert(argv.end(), serve_args.begin(), serve_args.end());
    Subprocess::Options o;
    o.stdout_path = dir_.file("serve.out");
    o.stderr_path = dir_.file("serve.err");
    service_ = std::make_unique<Subprocess>(argv, o);
    std::string line;
    bool up = wait_until(
        [&] {
          std::string out = flight::testing::read_file(dir_.file("serve.out"));
          auto pos = out.find("listening on http://127.0.0.1:");
          if (pos == std::string::npos || out.find('\n', pos) == std::string::npos) return false;
          line = out.substr(pos);
          return true;
        },
        std::chrono::seconds(20));
    if (!up) {
      ADD_FAILURE() << "flight serve did not start: "
                    << flight::testing::read_file(dir_.file("serve.err"));
      return;
    }
    port_ = std::stoi(line.substr(line.rfind(':') + 1));
  }

  // SIGTERM, then the same command on the same port.
  void restart_service() {
    service_->signal(SIGTERM);
    EXPECT_EQ(service_->wait(), 0);
    start_service(serve_args_);
  }

  Subprocess& add_endpoint(const std::string& name = "edge", int threads = 4) {
    std::vector<std::string> argv = {
        FLIGHT_BINARY, "--log-level", "warn",         "endpoint",
        "--service",   url(),         "--token-file", dir_.file("token"),
        "--name",      name,          "--threads",    std::to_string(threads),
        "--grace-s",   "20"};
    Subprocess::Options o;
    o.stderr_path = dir_.file("endpoint" + std::to_string(endpoints_.size()) + ".err");
    endpoints_.push_back(std::make_unique<Subprocess>(argv, o));
    return *endpoints_.back();
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& token() const { return token_; }
  const TempDir& dir() const { return dir_; }
  Subprocess& service() { return *service_; }

  nlohmann::json task(const std::string& id) {
    return request(port_, "GET", "/v1/tasks/" + id, token_).json();
  }

 private:
  TempDir dir_;
  std::string token_;
  std::vector<std::string> serve_args_;
  std::unique_ptr<Subprocess> service_;
  std::vector<std::unique_ptr<Subprocess>> endpoints_;
  int port_ = 0;
};

inline bool file_exists(const std::string& path) {
  std::ifstream in(path);
  return in.good();
}

inline void touch(const std::string& path) { std::ofstream(path) << "go\n"; }

}  // namespace flight::faas::testing
