// The built-in launchers (registered in launcher.cc) and what they share: the
// coordinator's side of a distributed run. Internal to flight/deploy.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flight/base/redis_server.h"
#include "flight/deploy/launcher.h"
#include "flight/faas/service.h"

namespace flight::deploy {

// The coordinator host's side of a distributed run: the REST service (in this
// process, bound to `address`), its bearer token, and a private redis-server
// on the same address when the hosts need one: the experiment's data plane is
// `memory`, which cannot cross processes (Redis replaces it), or
// `redis_on_coordinator` is set and the data plane is mediated through Redis
// (emulated hosts: the namespaces reach only the coordinator's address, so
// every `redis` connector of the data plane is pointed at this server).
//
// Thread safety: stop() may be called from any thread (signal teardown);
// everything else from one thread.
class ControlPlane {
 public:
  // `dir` receives the token file (mode 0600) and redis's files.
  static StatusOr<std::unique_ptr<ControlPlane>> start(const engine::ExperimentConfig& config,
                                                       const std::string& address,
                                                       const std::string& dir,
                                                       bool redis_on_coordinator = false);
  ~ControlPlane();

  const std::string& url() const { return url_; }
  const std::string& token() const { return token_; }
  const std::string& token_file() const { return token_file_; }
  // The experiment as the coordinator runs it: control through this service,
  // a `memory` data plane replaced by this plane's Redis.
  const engine::ExperimentConfig& coordinator_config() const { return config_; }

  // argv of one `flight endpoint` host serving `name`.
  std::vector<std::string> endpoint_argv(const std::string& binary, const std::string& name,
                                         int64_t threads) const;

  // Waits until every name has a registered endpoint process. `alive` is
  // asked between polls and ends the wait with its error (a host died).
  Status wait_for_endpoints(const std::vector<std::string>& names, double timeout_s,
                            const std::function<Status()>& alive) const;

  void stop();

 private:
  ControlPlane() = default;
  engine::ExperimentConfig config_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<faas::Service> service_;
  std::string url_, token_, token_file_;
};

// True when a connector of the data plane (the default, a named one, or one
// inside a `multi`) is `redis`: weights are mediated, not direct.
bool data_plane_uses_redis(const engine::DataPlaneConfig& data_plane);

// The address hosts reach the coordinator at: `configured` when set, else
// 127.0.0.1 (`local`) or this host's first IPv4 address by name.
StatusOr<std::string> coordinator_address(const std::string& configured, bool local);

// The coordinator's part of every launcher: waits until `names` registered
// (`alive` ends the wait early when a host died), runs the experiment through
// `plane`, then `teardown()`. SIGINT / SIGTERM meanwhile run `teardown()` and
// exit 128+signal, so that children and jobs never outlive an interrupted run.
StatusOr<engine::RunSummary> run_coordinator(const ControlPlane& plane,
                                             const std::vector<std::string>& names,
                                             const LaunchRequest& request,
                                             const std::function<Status()>& alive,
                                             const std::function<void()>& teardown);

class ProcessesLauncher : public Launcher {
 public:
  StatusOr<engine::RunSummary> run(LaunchRequest request) override;
};

class SlurmLauncher : public Launcher {
 public:
  StatusOr<engine::RunSummary> run(LaunchRequest request) override;
};

class MpiLauncher : public Launcher {
 public:
  StatusOr<engine::RunSummary> run(LaunchRequest request) override;
};

}  // namespace flight::deploy
