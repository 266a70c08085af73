// libFuzzer target: the REST service's request handling, in process. Each
// input is the raw bytes a client sends on one connection (requests may be
// pipelined); a real Service on a loopback port reads them and must answer
// or close, never crash, hang or leak. Long polls are clamped to 0 s, and the
// service is renewed every few thousand inputs to bound its task tables.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "flight/base/check.h"
#include "flight/base/logging.h"
#include "flight/faas/service.h"

using namespace flight::faas;

namespace {

// Seeds send this token (and an endpoint / client token of the role file
// would need a file; the admin role reaches every route).
constexpr const char* kToken = "fuzz-token-0123456789abcdef";

std::unique_ptr<Service> g_service;
size_t g_runs = 0;

Service& service() {
  if (!g_service || ++g_runs % 5000 == 0) {
    g_service.reset();
    ServiceOptions o;
    o.token = kToken;
    o.threads = 1;
    o.max_body_bytes = 64 * 1024;
    o.max_batch = 50;
    o.max_queue = 500;
    o.max_wait_s = 0;
    o.read_timeout_s = 2;
    g_service = std::make_unique<Service>(o);
    flight::Status st = g_service->start();
    FLIGHT_CHECK(st.is_ok(), "service did not start: " + st.to_string());
  }
  return *g_service;
}

// libFuzzer's -timeout watchdog is a periodic SIGALRM, which interrupts a
// blocking socket call with EINTR (calls on a socket with SO_RCVTIMEO are never
// restarted). That is not the service's doing: every call here retries on
// EINTR, and a hang is measured with poll() against a deadline instead.
void connect_or_die(int fd, const sockaddr_in& addr) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) return;
  FLIGHT_CHECK(errno == EINTR, std::string("cannot connect to the service: ") + strerror(errno));
  // An interrupted connect goes on in the background: wait for it to finish.
  pollfd p{fd, POLLOUT, 0};
  while (poll(&p, 1, 10000) < 0) FLIGHT_CHECK(errno == EINTR, "poll failed");
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  FLIGHT_CHECK(err == 0, std::string("cannot connect to the service: ") + strerror(err));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int port = service().port();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  FLIGHT_CHECK(fd >= 0, "socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  connect_or_die(fd, addr);
  size_t off = 0;
  while (off < size) {
    ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the service may close early (e.g. a 413)
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  // A service that neither answers nor closes within 10 s is a hang.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  char buf[65536];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    FLIGHT_CHECK(left > 0, "the service neither answered nor closed within 10 s");
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0) FLIGHT_CHECK(errno == EINTR, std::string("poll failed: ") + strerror(errno));
    if (r <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n == 0) break;
    if (errno == EINTR) continue;
    FLIGHT_CHECK(errno == ECONNRESET, std::string("recv failed: ") + strerror(errno));
    break;
  }
  close(fd);
  return 0;
}
