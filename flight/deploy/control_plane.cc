// The coordinator's side of a distributed run, shared by every launcher that
// starts host processes.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "flight/base/logging.h"
#include "flight/deploy/launchers.h"
#include "flight/faas/http_client.h"
#include "flight/faas/stop_signals.h"

namespace flight::deploy {
namespace {

std::string random_token() {
  std::random_device rd;
  std::ostringstream os;
  for (int i = 0; i < 4; ++i) os << std::hex << rd() << rd();
  return os.str();
}

// flight_endpoints{endpoint="NAME"} N lines of GET /metrics.
std::map<std::string, int64_t> registered_endpoints(const std::string& metrics) {
  std::map<std::string, int64_t> out;
  std::istringstream in(metrics);
  std::string line;
  const std::string prefix = "flight_endpoints{endpoint=\"";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    const size_t end = line.find("\"}", prefix.size());
    if (end == std::string::npos) continue;
    out[line.substr(prefix.size(), end - prefix.size())] = std::atoll(line.c_str() + end + 2);
  }
  return out;
}

// Calls f on every connector config in `j`, descending into a multi's list.
template <typename F>
void each_connector(nlohmann::json& j, const F& f) {
  if (!j.is_object()) return;
  f(j);
  if (j.contains("connectors") && j["connectors"].is_array()) {
    for (auto& c : j["connectors"]) {
      // multi: [{connector: {...}, ...route...}] or plain configs.
      each_connector(c.contains("connector") ? c["connector"] : c, f);
    }
  }
}

template <typename F>
void each_connector(engine::DataPlaneConfig& d, const F& f) {
  each_connector(d.connector, f);
  for (auto& [name, c] : d.connectors.items()) each_connector(c, f);
}

bool is_redis(const nlohmann::json& c) { return c.value("kind", std::string()) == "redis"; }

}  // namespace

bool data_plane_uses_redis(const engine::DataPlaneConfig& data_plane) {
  engine::DataPlaneConfig d = data_plane;
  bool found = false;
  each_connector(d, [&](nlohmann::json& c) { found = found || is_redis(c); });
  return found;
}

StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::start(const engine::ExperimentConfig& config,
                                                            const std::string& address,
                                                            const std::string& dir,
                                                            bool redis_on_coordinator) {
  std::unique_ptr<ControlPlane> p(new ControlPlane());
  p->config_ = config;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return unavailable("cannot create '" + dir + "': " + ec.message());

  p->token_ = random_token();
  p->token_file_ = std::filesystem::absolute(dir + "/token").string();
  {
    std::ofstream f(p->token_file_, std::ios::trunc);
    f << p->token_ << "\n";
    if (!f) return unavailable("cannot write token file " + p->token_file_);
  }
  ::chmod(p->token_file_.c_str(), 0600);

  // `memory` lives in one process; the hosts need a store they can all reach.
  const bool memory = config.data_plane.connector.value("kind", std::string()) == "memory";
  const bool mediated = redis_on_coordinator && data_plane_uses_redis(config.data_plane);
  if (memory || mediated) {
    RedisServerOptions ro;
    ro.dir = std::filesystem::absolute(dir + "/redis").string();
    std::filesystem::create_directories(ro.dir, ec);
    // Also loopback: RedisServer's readiness PING goes to 127.0.0.1.
    if (address != "127.0.0.1") ro.extra_args = {"--bind", address, "127.0.0.1"};
    FLIGHT_ASSIGN_OR_RETURN(p->redis_, RedisServer::start(ro));
    const int port = p->redis_->port();
    if (memory) {
      p->config_.data_plane.connector = {{"kind", "redis"}, {"host", address}, {"port", port}};
    }
    // A configured server (its url, host, port, password) is not reachable
    // from the emulated hosts; its other options (db, chunking) stay.
    each_connector(p->config_.data_plane, [&](nlohmann::json& c) {
      if (!is_redis(c)) return;
      c.erase("url");
      c.erase("password");
      c["host"] = address;
      c["port"] = port;
    });
  }

  faas::ServiceOptions so;
  so.host = address;
  so.port = 0;
  so.token = p->token_;
  p->service_ = std::make_unique<faas::Service>(so);
  FLIGHT_RETURN_IF_ERROR(p->service_->start());
  p->url_ = p->service_->url();
  p->config_.control.kind = engine::ControlKind::kRest;
  p->config_.control.url = p->url_;
  p->config_.control.token_file = p->token_file_;
  spdlog::info("deploy: service {} (data plane {})", p->url_,
               p->config_.data_plane.connector.dump());
  return p;
}

ControlPlane::~ControlPlane() { stop(); }

void ControlPlane::stop() {
  if (service_) service_->stop();
  if (redis_) redis_->stop();
}

std::vector<std::string> ControlPlane::endpoint_argv(const std::string& binary,
                                                     const std::string& name,
                                                     int64_t threads) const {
  return {binary,      "endpoint", "--service", url_,        "--token-file",
          token_file_, "--name",   name,        "--threads", std::to_string(threads)};
}

Status ControlPlane::wait_for_endpoints(const std::vector<std::string>& names, double timeout_s,
                                        const std::function<Status()>& alive) const {
  faas::HttpClient http(url_, token_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(timeout_s * 1000));
  auto pause = std::chrono::milliseconds(10);
  while (true) {
    std::vector<std::string> missing;
    auto r = http.get("/metrics", 5);
    if (r.is_ok() && r->ok()) {
      const auto up = registered_endpoints(r->body);
      for (const auto& n : names) {
        auto it = up.find(n);
        if (it == up.end() || it->second < 1) missing.push_back(n);
      }
      if (missing.empty()) return Status::ok();
    }
    FLIGHT_RETURN_IF_ERROR(alive());
    if (std::chrono::steady_clock::now() > deadline) {
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      return deadline_exceeded("deploy: hosts did not register within " +
                               std::to_string(timeout_s) + " s (missing: " + list +
                               "; deploy.register_timeout_s raises the limit)");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

StatusOr<std::string> coordinator_address(const std::string& configured, bool local) {
  if (!configured.empty()) return configured;
  if (local) return std::string("127.0.0.1");
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return unavailable("gethostname failed");
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(name, nullptr, &hints, &res) != 0 || res == nullptr) {
    return unavailable(std::string("cannot resolve this host's name '") + name +
                       "'; set deploy.address");
  }
  char ip[INET_ADDRSTRLEN] = {0};
  ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr, ip, sizeof(ip));
  ::freeaddrinfo(res);
  return std::string(ip);
}

StatusOr<engine::RunSummary> run_coordinator(const ControlPlane& plane,
                                             const std::vector<std::string>& names,
                                             const LaunchRequest& request,
                                             const std::function<Status()>& alive,
                                             const std::function<void()>& teardown) {
  std::mutex mu;
  auto summary = [&]() -> StatusOr<engine::RunSummary> {
    faas::StopSignals signals([&](int sig) {
      std::lock_guard<std::mutex> lock(mu);
      spdlog::warn("deploy: signal {}, stopping the hosts", sig);
      teardown();
      std::_Exit(128 + sig);
    });
    FLIGHT_RETURN_IF_ERROR(
        plane.wait_for_endpoints(names, request.deploy.register_timeout_s, alive));
    return engine::run_experiment(plane.coordinator_config(), request.run);
  }();
  teardown();
  return summary;
}

}  // namespace flight::deploy
