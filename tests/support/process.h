// Test support: the test-suite face of flight/base/process.h and
// flight/base/redis_server.h (the one launcher). Tests want exceptions, not
// Status, when a fixture cannot start, and quick SIGKILL teardown; this file
// only adapts those two things. Used by the multi-process suites (tcp
// connector, REST service, endpoints, distributed runs).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flight/base/process.h"
#include "flight/base/redis_server.h"

namespace flight::testing {

using flight::TempDir;

// A loopback TCP port that was free a moment ago (throws when none is).
int free_port();

inline bool port_open(int port) { return loopback_port_accepts(port); }

inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  return poll_until(pred, timeout);
}

inline std::string read_file(const std::string& path) { return read_text_file(path); }

// A child process; SIGKILLed on destruction if still running. stdout/stderr go
// to the given files (or are inherited when empty). Throws when it cannot start.
class Subprocess {
 public:
  struct Options {
    std::string stdout_path;
    std::string stderr_path;
    std::map<std::string, std::string> env;  // added to the parent's environment
  };
  Subprocess(const std::vector<std::string>& argv, const Options& options);
  explicit Subprocess(const std::vector<std::string>& argv) : Subprocess(argv, Options{}) {}

  pid_t pid() const { return process_->pid(); }
  bool running() { return process_->running(); }
  void signal(int sig) { process_->signal(sig); }
  // Exit code, or 128+signal when killed by one.
  int wait() { return process_->wait(); }
  // As wait(), but gives up after `timeout` and returns -1.
  int wait_for(std::chrono::milliseconds timeout) {
    return process_->wait_for(timeout).value_or(-1);
  }

 private:
  std::unique_ptr<Process> process_;
};

// A real redis-server on a free loopback port, its data in a temp dir.
// With `persistent`, it uses an append-only file so start() after stop() keeps the data;
// with a `password`, clients must AUTH (requirepass).
class RedisServer {
 public:
  explicit RedisServer(bool persistent = false, const std::string& password = "");
  int port() const { return server_->port(); }
  std::string host() const { return server_->host(); }
  std::string url() const { return server_->url(); }
  void stop() { server_->stop(); }
  void start();

 private:
  std::unique_ptr<flight::RedisServer> server_;
};

}  // namespace flight::testing
