// `flight transport-peer` (hidden): the other process in transport's
// two-process tests and in `flight bench transport`.
//
//   --mode put    put sample_params(bytes, seed) into a Store on --connector,
//                 write the Ref's JSON to --out (atomically), then keep serving
//                 until SIGTERM/SIGINT or --linger seconds
//   --mode get    resolve the Ref in --ref and exit 0 when it equals
//                 sample_params(bytes, seed), 1 otherwise
//   --mode bench  line protocol on stdin/stdout for the benchmark:
//                 "put <size>" -> "<key> <put seconds>"   (connector put of raw bytes)
//                 "evict <key>" -> "ok"
//                 "raw" -> "<port>" of a raw socket server: each 8-byte request
//                          n is answered with n bytes
//                 "quit"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flight/base/time.h"
#include "flight/bench/registry.h"
#include "flight/bench/sample_params.h"
#include "transport/registry.h"
#include "transport/store.h"

namespace flight::bench {
namespace {

using transport::Buffer;
using transport::Bytes;

struct PeerArgs {
  std::string mode;
  std::string connector = R"({"kind":"tcp"})";
  uint64_t bytes = 1 << 20;
  uint64_t seed = 1;
  std::string out;
  std::string ref;
  double linger = 300;
};

int run_put(const PeerArgs& a) {
  // Block the stop signals before any thread exists, so every thread inherits
  // the mask and sigtimedwait below is the one place they arrive.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  nlohmann::json config = nlohmann::json::parse(a.connector, nullptr, false);
  if (config.is_discarded()) return usage_error("--connector is not JSON: " + a.connector);
  auto store = transport::Store::create(config);
  if (!store.is_ok()) return fail(store.status().to_string());
  auto ref = (*store)->put(sample_params(a.bytes, a.seed));
  if (!ref.is_ok()) return fail(ref.status().to_string());
  std::string tmp = a.out + ".tmp";
  {
    std::ofstream f(tmp);
    f << ref->to_json().dump() << "\n";
    if (!f) return fail("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), a.out.c_str()) != 0) return fail("cannot rename to " + a.out);
  timespec ts;
  ts.tv_sec = static_cast<time_t>(a.linger);
  ts.tv_nsec = 0;
  sigtimedwait(&stop, nullptr, &ts);
  return kExitOk;
}

int run_get(const PeerArgs& a) {
  std::ifstream f(a.ref);
  if (!f) return usage_error("cannot read --ref " + a.ref);
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) return fail(a.ref + " is not JSON");
  auto ref = transport::Ref::from_json(j);
  if (!ref.is_ok()) return fail(ref.status().to_string());
  auto got = transport::Store::process_default().get(*ref);
  if (!got.is_ok()) return fail(got.status().to_string());
  if (!got->equal(sample_params(a.bytes, a.seed))) {
    return fail("resolved ParamSet differs from sample_params(" + std::to_string(a.bytes) + ", " +
                std::to_string(a.seed) + ")");
  }
  std::cout << "ok " << got->nbytes() << std::endl;
  return kExitOk;
}

// Answers each 8-byte request n with n bytes from a pre-touched buffer: the
// baseline for a pull over loopback. The buffer is the same kind of memory the
// connectors use (transport::Buffer: huge-page backed when large), so the
// baseline is not handicapped by TLB misses ours avoids.
void raw_serve(int listen_fd) {
  for (;;) {
    int fd = ::accept(listen_fd, nullptr, nullptr);
    if (fd < 0) return;
    std::thread([fd] {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      std::shared_ptr<Buffer> data;
      for (;;) {
        uint64_t n = 0;
        size_t got = 0;
        while (got < 8) {
          ssize_t r = ::recv(fd, reinterpret_cast<char*>(&n) + got, 8 - got, 0);
          if (r <= 0) {
            ::close(fd);
            return;
          }
          got += static_cast<size_t>(r);
        }
        if (!data || data->size() < n) {
          auto b = Buffer::allocate(n);
          if (!b.is_ok()) {
            ::close(fd);
            return;
          }
          data = std::move(*b);
          std::memset(data->data(), 'r', n);
        }
        size_t sent = 0;
        while (sent < n) {
          ssize_t r = ::send(fd, data->data() + sent, n - sent, MSG_NOSIGNAL);
          if (r <= 0) {
            ::close(fd);
            return;
          }
          sent += static_cast<size_t>(r);
        }
      }
    }).detach();
  }
}

int run_bench(const PeerArgs& a) {
  nlohmann::json config = nlohmann::json::parse(a.connector, nullptr, false);
  if (config.is_discarded()) return usage_error("--connector is not JSON: " + a.connector);
  auto conn = transport::make_connector(config);
  if (!conn.is_ok()) return fail(conn.status().to_string());
  std::map<uint64_t, Bytes> payloads;
  int raw_port = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "put") {
      uint64_t size = 0;
      in >> size;
      Bytes& payload = payloads[size];
      if (!payload) {
        auto buf = Buffer::allocate(size);
        if (!buf.is_ok()) return fail(buf.status().to_string());
        std::memset((*buf)->data(), 'p', size);
        payload = std::move(*buf);
      }
      Stopwatch sw;
      auto key = (*conn)->put_shared(payload);
      double s = sw.seconds();
      if (!key.is_ok()) return fail(key.status().to_string());
      std::cout << *key << " " << s << std::endl;
    } else if (cmd == "evict") {
      std::string key;
      in >> key;
      Status st = (*conn)->evict(key);
      std::cout << (st.is_ok() ? "ok" : st.to_string()) << std::endl;
    } else if (cmd == "raw") {
      if (raw_port == 0) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(fd, 16) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
          return fail("raw server: cannot listen");
        }
        raw_port = ntohs(addr.sin_port);
        std::thread(raw_serve, fd).detach();
      }
      std::cout << raw_port << std::endl;
    } else if (cmd == "quit") {
      break;
    } else if (!cmd.empty()) {
      std::cout << "error unknown command " << cmd << std::endl;
    }
  }
  std::_Exit(0);  // detached raw-server threads may be blocked in accept/recv
}

FLIGHT_BENCH(transport_peer, {"transport-peer", "Helper process for transport tests and benchmarks",
                              [](CLI::App* app) {
                                app->group("");  // hidden from --help
                                auto a = std::make_shared<PeerArgs>();
                                app->add_option("--mode", a->mode, "put | get | bench")
                                    ->required()
                                    ->check(CLI::IsMember({"put", "get", "bench"}));
                                app->add_option("--connector", a->connector,
                                                "connector config JSON");
                                app->add_option("--bytes", a->bytes, "sample ParamSet size");
                                app->add_option("--seed", a->seed, "sample ParamSet seed");
                                app->add_option("--out", a->out, "where put writes the Ref JSON");
                                app->add_option("--ref", a->ref, "Ref JSON file to resolve");
                                app->add_option("--linger", a->linger, "seconds put keeps serving");
                                return [a]() -> int {
                                  if (a->mode == "put") {
                                    if (a->out.empty())
                                      return usage_error("--mode put needs --out");
                                    return run_put(*a);
                                  }
                                  if (a->mode == "get") {
                                    if (a->ref.empty())
                                      return usage_error("--mode get needs --ref");
                                    return run_get(*a);
                                  }
                                  return run_bench(*a);
                                };
                              },
                              ""});

}  // namespace
}  // namespace flight::bench
