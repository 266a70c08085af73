// Test support: child processes, temporary directories, loopback ports and a
// real redis-server. Used by the multi-process suites (tcp connector, REST
// service, endpoints, distributed runs).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace flight::testing {

// A directory under $TMPDIR (or /tmp) removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago.
int free_port();

// True when something accepts TCP connections on 127.0.0.1:port.
bool port_open(int port);

// Polls `pred` until it is true or `timeout` passes; returns its last value.
// For waiting on another process's readiness, where no notification exists.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// A child process started with posix_spawn. Killed (SIGKILL) on destruction if
// still running. stdout/stderr go to the given files (or are inherited when empty).
class Subprocess {
 public:
  struct Options {
    std::string stdout_path;
    std::string stderr_path;
    std::map<std::string, std::string> env;  // added to the parent's environment
  };
  Subprocess(const std::vector<std::string>& argv, const Options& options);
  explicit Subprocess(const std::vector<std::string>& argv) : Subprocess(argv, Options{}) {}
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit code, or 128+signal when killed by one.
  int wait();
  // As wait(), but gives up after `timeout` and returns -1.
  int wait_for(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// A real redis-server on a free loopback port, its data in a temp dir.
// With `persistent`, it uses an append-only file so restart() keeps the data.
class RedisServer {
 public:
  explicit RedisServer(bool persistent = false);
  ~RedisServer();
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  void stop();
  void start();

 private:
  bool persistent_;
  TempDir dir_;
  int port_;
  std::unique_ptr<Subprocess> proc_;
};

// Reads a whole file ("" when missing).
std::string read_file(const std::string& path);

}  // namespace flight::testing
