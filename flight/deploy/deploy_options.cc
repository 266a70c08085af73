#include "flight/deploy/deploy_options.h"

#include <algorithm>

#include "flight/base/strings.h"
#include "flight/deploy/launcher.h"
#include "flight/deploy/placement.h"

namespace flight::deploy {
namespace {

using nlohmann::json;

Status check_keys(const json& obj, const std::string& where,
                  const std::vector<std::string>& known) {
  if (!obj.is_object()) {
    return invalid_argument(where + " must be a mapping, got " + std::string(obj.type_name()));
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return invalid_argument(where + "." + it.key() + ": unknown key" +
                              did_you_mean(it.key(), known));
    }
  }
  return Status::ok();
}

template <typename T>
Status get(const json& obj, const std::string& where, const char* key, T* out) {
  if (!obj.contains(key) || obj[key].is_null()) return Status::ok();
  try {
    *out = obj[key].get<T>();
  } catch (const json::exception&) {
    return invalid_argument(where + "." + key + ": wrong type (" +
                            std::string(obj[key].type_name()) + ")");
  }
  return Status::ok();
}

}  // namespace

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
  if (j.is_null()) return o;
  FLIGHT_RETURN_IF_ERROR(check_keys(j, "deploy",
                                    {"launcher", "hosts", "placement", "threads", "address",
                                     "register_timeout_s", "slurm", "emulate"}));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "launcher", &o.launcher));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "hosts", &o.hosts));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "placement", &o.placement));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "threads", &o.threads));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "address", &o.address));
  FLIGHT_RETURN_IF_ERROR(get(j, "deploy", "register_timeout_s", &o.register_timeout_s));
  if (j.contains("slurm") && !j["slurm"].is_null()) {
    const json& s = j["slurm"];
    FLIGHT_RETURN_IF_ERROR(
        check_keys(s, "deploy.slurm", {"nodes", "tasks_per_node", "partition", "time", "extra"}));
    FLIGHT_RETURN_IF_ERROR(get(s, "deploy.slurm", "nodes", &o.slurm.nodes));
    FLIGHT_RETURN_IF_ERROR(get(s, "deploy.slurm", "tasks_per_node", &o.slurm.tasks_per_node));
    FLIGHT_RETURN_IF_ERROR(get(s, "deploy.slurm", "partition", &o.slurm.partition));
    FLIGHT_RETURN_IF_ERROR(get(s, "deploy.slurm", "time", &o.slurm.time));
    FLIGHT_RETURN_IF_ERROR(get(s, "deploy.slurm", "extra", &o.slurm.extra));
  }
  if (j.contains("emulate") && !j["emulate"].is_null()) {
    const json& e = j["emulate"];
    FLIGHT_RETURN_IF_ERROR(check_keys(e, "deploy.emulate", {"links", "prefix"}));
    o.emulate = true;
    FLIGHT_RETURN_IF_ERROR(get(e, "deploy.emulate", "prefix", &o.emulate_prefix));
    if (e.contains("links") && !e["links"].is_null()) {
      FLIGHT_RETURN_IF_ERROR(
          check_keys(e["links"], "deploy.emulate.links", {"coordinator", "host"}));
      FLIGHT_RETURN_IF_ERROR(
          get(e["links"], "deploy.emulate.links", "coordinator", &o.coordinator_mbit));
      FLIGHT_RETURN_IF_ERROR(get(e["links"], "deploy.emulate.links", "host", &o.host_mbit));
    }
  }
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

}  // namespace flight::deploy
