// A private redis-server as a child process: the one way benches, tests and
// launchers start Redis. Binds 127.0.0.1 on a free port (or the one given),
// keeps its files in its own directory, and is ready (answers PING) when
// start() returns. POSIX only; speaks just enough RESP to PING, so base needs
// no hiredis.
//
// Ownership: the RedisServer owns the redis-server process (stopped with
// SIGTERM, which flushes an append-only file, on stop() or destruction) and,
// when it made it, the data directory.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "flight/base/process.h"
#include "flight/base/status.h"

namespace flight {

struct RedisServerOptions {
  std::string executable = "redis-server";  // looked up in PATH
  int port = 0;                             // 0 = a free loopback port
  std::string dir;          // data + log directory; empty = a fresh temp dir, removed at the end
  bool persistent = false;  // append-only file fsynced on every write (survives restart)
  std::chrono::milliseconds start_timeout{20000};  // until PING answers
  std::vector<std::string> extra_args;             // appended: "--maxmemory", "1gb", ...

  Status validate() const;
};

class RedisServer {
 public:
  // Starts redis-server and waits for PING. unavailable() when it is not
  // installed or does not answer in time (the message carries its log).
  static StatusOr<std::unique_ptr<RedisServer>> start(RedisServerOptions options = {});

  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // SIGTERM and wait (redis flushes its append-only file first). Idempotent.
  void stop();
  // Starts it again on the same port and directory (after stop()).
  Status restart();

 private:
  explicit RedisServer(RedisServerOptions options) : options_(std::move(options)) {}
  Status launch();

  RedisServerOptions options_;
  std::unique_ptr<TempDir> own_dir_;
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// True when 127.0.0.1:port answers a RESP PING with +PONG (or -NOAUTH: a
// server with requirepass is up too).
bool redis_ping(int port);

}  // namespace flight
