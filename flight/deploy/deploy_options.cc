#include "flight/deploy/deploy_options.h"

#include <algorithm>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/deploy/launcher.h"
#include "flight/deploy/placement.h"

namespace flight::deploy {
using nlohmann::json;

json SlurmOptions::to_json() const {
  return json{{"nodes", nodes},
              {"tasks_per_node", tasks_per_node},
              {"partition", partition},
              {"time", time},
              {"extra", extra}};
}

json DeployOptions::to_json() const {
  return json{{"launcher", launcher},
              {"hosts", hosts},
              {"placement", placement},
              {"threads", threads},
              {"address", address},
              {"register_timeout_s", register_timeout_s},
              {"slurm", slurm.to_json()},
              {"emulate",
               emulate ? json{{"links", {{"coordinator", coordinator_mbit}, {"host", host_mbit}}},
                              {"prefix", emulate_prefix}}
                       : json(nullptr)}};
}

Status DeployOptions::validate() const {
  const auto launchers = launcher_names();
  if (std::find(launchers.begin(), launchers.end(), launcher) == launchers.end()) {
    return invalid_argument("deploy.launcher: unknown launcher '" + launcher + "'" +
                            did_you_mean(launcher, launchers) +
                            " (known: " + join(launchers, ", ") + ")");
  }
  const auto policies = placement_names();
  if (std::find(policies.begin(), policies.end(), placement) == policies.end()) {
    return invalid_argument("deploy.placement: unknown placement '" + placement + "'" +
                            did_you_mean(placement, policies) + " (known: " + join(policies, ", ") +
                            ")");
  }
  if (hosts < 1 || hosts > 100000) {
    return invalid_argument("deploy.hosts must be in [1, 100000], got " + std::to_string(hosts));
  }
  if (threads < 0 || threads > 1024) {
    return invalid_argument("deploy.threads must be in [0, 1024], got " + std::to_string(threads));
  }
  if (emulate && !(coordinator_mbit > 0 && host_mbit > 0)) {
    return invalid_argument("deploy.emulate.links: rates must be > 0 Mbit/s");
  }
  if (!(register_timeout_s > 0)) {
    return invalid_argument("deploy.register_timeout_s must be > 0");
  }
  if (slurm.nodes < 0 || slurm.tasks_per_node < 0) {
    return invalid_argument("deploy.slurm.nodes and tasks_per_node must be >= 0");
  }
  for (const auto& line : slurm.extra) {
    if (line.find('\n') != std::string::npos) {
      return invalid_argument("deploy.slurm.extra: one sbatch option per entry, no newlines");
    }
  }
  return Status::ok();
}

StatusOr<DeployOptions> DeployOptions::from_json(const json& j) {
  DeployOptions o;
  OptionReader r(j, "deploy");
  r.optional("launcher", &o.launcher)
      .optional("hosts", &o.hosts)
      .optional("placement", &o.placement)
      .optional("threads", &o.threads)
      .optional("address", &o.address)
      .optional("register_timeout_s", &o.register_timeout_s);
  OptionReader slurm = r.child("slurm");
  slurm.optional("nodes", &o.slurm.nodes)
      .optional("tasks_per_node", &o.slurm.tasks_per_node)
      .optional("partition", &o.slurm.partition)
      .optional("time", &o.slurm.time)
      .optional("extra", &o.slurm.extra);
  o.emulate = r.has("emulate");
  OptionReader emulate = r.child("emulate");
  emulate.optional("prefix", &o.emulate_prefix);
  OptionReader links = emulate.child("links");
  links.optional("coordinator", &o.coordinator_mbit).optional("host", &o.host_mbit);
  for (const OptionReader* part : {&r, &slurm, &emulate, &links}) {
    FLIGHT_RETURN_IF_ERROR(part->finish());
  }
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

}  // namespace flight::deploy
