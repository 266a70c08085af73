// launcher: processes — every host a `flight endpoint` child on this machine.
#include "flight/base/logging.h"
#include "flight/base/process.h"
#include "flight/deploy/launchers.h"

namespace flight::deploy {

StatusOr<engine::RunSummary> ProcessesLauncher::run(LaunchRequest r) {
  FLIGHT_ASSIGN_OR_RETURN(std::string address, coordinator_address(r.deploy.address, true));
  const std::string dir = r.output_dir + "/deploy";
  FLIGHT_ASSIGN_OR_RETURN(auto plane, ControlPlane::start(r.config, address, dir));

  std::vector<std::unique_ptr<Process>> hosts;
  const auto names = r.placement.endpoint_names();
  for (const auto& name : names) {
    ProcessOptions po;
    po.argv = plane->endpoint_argv(r.flight_binary, name, r.deploy.threads);
    po.out = Redirect::file(dir + "/endpoint-" + name + ".log", true);
    po.err = Redirect::file(dir + "/endpoint-" + name + ".log", true);
    po.new_process_group = true;
    FLIGHT_ASSIGN_OR_RETURN(auto p, Process::spawn(std::move(po)));
    hosts.push_back(std::move(p));
  }
  spdlog::info("deploy: {} host processes started (logs in {})", hosts.size(), dir);

  auto teardown = [&] {
    for (auto& h : hosts) h->signal(SIGTERM);
    for (auto& h : hosts) h->terminate();
    plane->stop();
  };
  auto alive = [&]() -> Status {
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (!hosts[i]->running()) {
        return unavailable("deploy: host " + names[i] + " exited with " +
                           std::to_string(hosts[i]->wait()) + " (see " + dir + "/endpoint-" +
                           names[i] + ".log)");
      }
    }
    return Status::ok();
  };
  auto summary = with_teardown_on_signal(teardown, [&]() -> StatusOr<engine::RunSummary> {
    FLIGHT_RETURN_IF_ERROR(plane->wait_for_endpoints(names, r.deploy.register_timeout_s, alive));
    return engine::run_experiment(plane->coordinator_config(), r.run);
  });
  teardown();
  return summary;
}

}  // namespace flight::deploy
