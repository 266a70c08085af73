#include "flight/base/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace flight {

Status RedisServerOptions::validate() const {
  if (executable.empty()) return invalid_argument("redis-server: executable is empty");
  if (port < 0 || port > 65535) {
    return invalid_argument("redis-server: port " + std::to_string(port) + " is not 0..65535");
  }
  if (start_timeout.count() <= 0) return invalid_argument("redis-server: start_timeout <= 0");
  return Status::ok();
}

bool redis_ping(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  // A stuck peer must not hang the caller's readiness poll.
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = false;
  const char ping[] = "PING\r\n";
  if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ping - 1)) {
    char buf[16] = {0};
    ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    // A server with requirepass answers -NOAUTH: it is up all the same.
    ok = (n >= 5 && std::memcmp(buf, "+PONG", 5) == 0) ||
         (n >= 7 && std::memcmp(buf, "-NOAUTH", 7) == 0);
  }
  ::close(fd);
  return ok;
}

StatusOr<std::unique_ptr<RedisServer>> RedisServer::start(RedisServerOptions options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  std::unique_ptr<RedisServer> server(new RedisServer(std::move(options)));
  if (server->options_.dir.empty()) {
    server->own_dir_ = std::make_unique<TempDir>("flight-redis");
    server->dir_ = server->own_dir_->path();
  } else {
    server->dir_ = server->options_.dir;
  }
  if (server->options_.port > 0) {
    server->port_ = server->options_.port;
  } else {
    FLIGHT_ASSIGN_OR_RETURN(server->port_, free_loopback_port());
  }
  FLIGHT_RETURN_IF_ERROR(server->launch());
  return server;
}

Status RedisServer::launch() {
  ProcessOptions po;
  po.argv = {options_.executable,
             "--port",
             std::to_string(port_),
             "--bind",
             "127.0.0.1",
             "--dir",
             dir_,
             "--save",
             "",
             "--protected-mode",
             "no",
             "--loglevel",
             "warning",
             "--logfile",
             dir_ + "/redis.log"};
  if (options_.persistent) {
    po.argv.insert(po.argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    po.argv.insert(po.argv.end(), {"--appendonly", "no"});
  }
  po.argv.insert(po.argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  po.out = Redirect::file(dir_ + "/redis.out");
  po.err = Redirect::file(dir_ + "/redis.err");
  auto proc = Process::spawn(std::move(po));
  if (!proc.is_ok()) return proc.status().with_context("redis-server (is it installed?)");
  process_ = std::move(*proc);
  bool exited = false;
  bool up = poll_until(
      [&] {
        if (redis_ping(port_)) return true;
        exited = !process_->running();
        return exited;
      },
      options_.start_timeout);
  if (up && !exited) return Status::ok();
  std::string log = read_text_file(dir_ + "/redis.log") + read_text_file(dir_ + "/redis.err");
  if (log.size() > 2000) log = log.substr(log.size() - 2000);
  process_.reset();
  return unavailable("redis-server on port " + std::to_string(port_) +
                     (exited ? " exited at start-up" : " did not answer PING in time") +
                     (log.empty() ? "" : ": " + log));
}

void RedisServer::stop() {
  if (!process_) return;
  process_->terminate();
  process_.reset();
}

Status RedisServer::restart() {
  stop();
  return launch();
}

RedisServer::~RedisServer() { stop(); }

}  // namespace flight
