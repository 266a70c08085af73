// launcher: processes — every host a `flight endpoint` child on this machine,
// optionally each in an emulated host's network namespace.
#include <csignal>
#include <filesystem>

#include "flight/base/logging.h"
#include "flight/base/process.h"
#include "flight/deploy/launchers.h"
#include "topology/topology.h"

namespace flight::deploy {
namespace {

// Emulated hosts: weights must cross the emulated links between the hosts
// that really hold them, so every node puts into a `tcp` connector bound to
// its own host's address (the coordinator's to 10.x.0.1). The engine picks a
// node's connector from the topology's `connector:`, so the placed topology is
// written out with one named connector per host and the run reads that file.
Status route_data_plane_over_hosts(engine::ExperimentConfig* config, const Placement& placement,
                                   const EmulatedHosts& hosts, const std::string& dir) {
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology t, engine::load_experiment_topology(*config));
  const auto names = placement.endpoint_names();
  std::map<std::string, std::string> address;
  for (size_t i = 0; i < names.size(); ++i) address[names[i]] = hosts.host_address(i);
  std::vector<topology::Node> nodes = t.nodes();
  for (auto& n : nodes) {
    if (n.is_coordinator()) {
      n.connector = "emulated-coordinator";
    } else {
      n.connector = "emulated-" + placement.endpoint_of(n.id);
    }
  }
  config->data_plane.connectors["emulated-coordinator"] = {
      {"kind", "tcp"}, {"host", hosts.coordinator_address()}, {"port", 0}};
  for (const auto& [name, addr] : address) {
    config->data_plane.connectors["emulated-" + name] = {
        {"kind", "tcp"}, {"host", addr}, {"port", 0}};
  }
  config->data_plane.connector = config->data_plane.connectors["emulated-coordinator"];
  FLIGHT_ASSIGN_OR_RETURN(topology::Topology placed, topology::Topology::from_nodes(nodes));
  const std::string file = dir + "/topology.yaml";
  FLIGHT_RETURN_IF_ERROR(placed.save_yaml(file));
  config->topology.file = file;
  config->topology.generate = nullptr;
  return Status::ok();
}

}  // namespace

StatusOr<engine::RunSummary> ProcessesLauncher::run(LaunchRequest r) {
  const std::string dir = std::filesystem::absolute(r.output_dir + "/deploy").string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto names = r.placement.endpoint_names();

  std::unique_ptr<EmulatedHosts> own_hosts;
  EmulatedHosts* emulated = r.emulated;
  std::string configured_address = r.deploy.address;
  if (r.deploy.emulate) {
    if (emulated == nullptr) {
      EmulatedHostsOptions eo;
      eo.prefix = r.deploy.emulate_prefix;
      eo.hosts = names.size();
      eo.coordinator_mbit = r.deploy.coordinator_mbit;
      eo.host_mbit = r.deploy.host_mbit;
      FLIGHT_ASSIGN_OR_RETURN(own_hosts, EmulatedHosts::create(eo));
      emulated = own_hosts.get();
    }
    if (emulated->options().hosts < names.size()) {
      return invalid_argument("deploy: " + std::to_string(names.size()) +
                              " hosts to start but only " +
                              std::to_string(emulated->options().hosts) + " emulated hosts");
    }
    // From here this thread — and the service, redis and the coordinator's
    // connectors it starts — lives on the coordinator's emulated host.
    FLIGHT_RETURN_IF_ERROR(emulated->enter_coordinator());
    configured_address = emulated->coordinator_address();
    // Mediated (Redis): a Redis on the coordinator's host, so every update
    // crosses its host's link and the coordinator's. Direct: `tcp` per host.
    if (!data_plane_uses_redis(r.config.data_plane)) {
      FLIGHT_RETURN_IF_ERROR(route_data_plane_over_hosts(&r.config, r.placement, *emulated, dir));
    }
  }
  FLIGHT_ASSIGN_OR_RETURN(std::string address, coordinator_address(configured_address, true));
  FLIGHT_ASSIGN_OR_RETURN(auto plane,
                          ControlPlane::start(r.config, address, dir, emulated != nullptr));

  std::vector<std::unique_ptr<Process>> hosts;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string log = dir + "/endpoint-" + names[i] + ".log";
    ProcessOptions po;
    if (emulated) po.argv = emulated->host_command_prefix(i);
    for (auto& a : plane->endpoint_argv(r.flight_binary, names[i], r.deploy.threads)) {
      po.argv.push_back(std::move(a));
    }
    po.out = Redirect::file(log, true);
    po.err = Redirect::file(log, true);
    po.new_process_group = true;
    FLIGHT_ASSIGN_OR_RETURN(auto p, Process::spawn(std::move(po)));
    hosts.push_back(std::move(p));
  }
  spdlog::info("deploy: {} host processes started{} (logs in {})", hosts.size(),
               emulated ? " on emulated hosts" : "", dir);

  auto teardown = [&] {
    for (auto& h : hosts) h->signal(SIGTERM);
    for (auto& h : hosts) h->terminate();
    plane->stop();
    own_hosts.reset();
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
  return run_coordinator(*plane, names, r, alive, teardown);
}

}  // namespace flight::deploy
