#include "tests/support/process.h"

#include <stdexcept>

namespace flight::testing {

int free_port() {
  auto port = free_loopback_port();
  if (!port.is_ok()) throw std::runtime_error(port.status().to_string());
  return *port;
}

Subprocess::Subprocess(const std::vector<std::string>& argv, const Options& options) {
  ProcessOptions po;
  po.argv = argv;
  po.env = options.env;
  if (!options.stdout_path.empty()) po.out = Redirect::file(options.stdout_path);
  if (!options.stderr_path.empty()) po.err = Redirect::file(options.stderr_path);
  po.kill_grace = std::chrono::milliseconds(0);  // teardown: SIGKILL at once
  auto p = Process::spawn(std::move(po));
  if (!p.is_ok()) throw std::runtime_error(p.status().to_string());
  process_ = std::move(*p);
}

RedisServer::RedisServer(bool persistent, const std::string& password) {
  RedisServerOptions o;
  o.persistent = persistent;
  if (!password.empty()) o.extra_args = {"--requirepass", password};
  auto s = flight::RedisServer::start(o);
  if (!s.is_ok()) throw std::runtime_error(s.status().to_string());
  server_ = std::move(*s);
}

void RedisServer::start() {
  Status st = server_->restart();
  if (!st.is_ok()) throw std::runtime_error(st.to_string());
}

}  // namespace flight::testing
