#include "flight/deploy/deploy_options.h"

#include <algorithm>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/deploy/emulated_hosts.h"
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

namespace {

constexpr int64_t kMaxHosts = 100000;
constexpr int64_t kMaxThreads = 1024;

// What is wrong with a name (empty when it is known).
std::string unknown_name(const char* what, const std::string& name,
                         const std::vector<std::string>& known) {
  if (std::find(known.begin(), known.end(), name) != known.end()) return "";
  return std::string("unknown ") + what + " '" + name + "'" + did_you_mean(name, known) +
         " (known: " + join(known, ", ") + ")";
}

std::string extra_problem(const std::vector<std::string>& extra) {
  for (const auto& line : extra) {
    if (line.find('\n') != std::string::npos) return "one sbatch option per entry, no newlines";
  }
  return "";
}

}  // namespace

// The checks again, for options changed after parsing (flight run --launcher,
// --hosts, --placement); from_json makes each with the field's line.
Status DeployOptions::validate() const {
  if (auto p = unknown_name("launcher", launcher, launcher_names()); !p.empty()) {
    return invalid_argument("deploy.launcher: " + p);
  }
  if (auto p = unknown_name("placement", placement, placement_names()); !p.empty()) {
    return invalid_argument("deploy.placement: " + p);
  }
  if (hosts < 1 || hosts > kMaxHosts) {
    return invalid_argument("deploy.hosts must be in [1, 100000], got " + std::to_string(hosts));
  }
  if (threads < 0 || threads > kMaxThreads) {
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
  if (auto p = extra_problem(slurm.extra); !p.empty()) {
    return invalid_argument("deploy.slurm.extra: " + p);
  }
  return Status::ok();
}

StatusOr<DeployOptions> DeployOptions::from_json(const json& j, const SourceLines* lines) {
  DeployOptions o;
  OptionReader r(j, "deploy", lines, "/deploy");
  r.optional("launcher", &o.launcher)
      .in_range("hosts", &o.hosts, int64_t{1}, kMaxHosts)
      .optional("placement", &o.placement)
      .in_range("threads", &o.threads, int64_t{0}, kMaxThreads)
      .optional("address", &o.address)
      .optional("register_timeout_s", &o.register_timeout_s);
  if (auto p = unknown_name("launcher", o.launcher, launcher_names()); !p.empty()) {
    r.fail("launcher", p);
  }
  if (auto p = unknown_name("placement", o.placement, placement_names()); !p.empty()) {
    r.fail("placement", p);
  }
  if (!(o.register_timeout_s > 0)) r.fail("register_timeout_s", "must be > 0");
  OptionReader slurm = r.child("slurm");
  slurm.at_least("nodes", &o.slurm.nodes, int64_t{0})
      .at_least("tasks_per_node", &o.slurm.tasks_per_node, int64_t{0})
      .optional("partition", &o.slurm.partition)
      .optional("time", &o.slurm.time)
      .optional("extra", &o.slurm.extra);
  if (auto p = extra_problem(o.slurm.extra); !p.empty()) slurm.fail("extra", p);
  o.emulate = r.has("emulate");
  OptionReader emulate = r.child("emulate");
  emulate.optional("prefix", &o.emulate_prefix);
  EmulatedHostsOptions hosts;
  hosts.prefix = o.emulate_prefix;
  if (Status st = hosts.validate(); !st.is_ok()) emulate.fail("prefix", st.message());
  OptionReader links = emulate.child("links");
  links.optional("coordinator", &o.coordinator_mbit).optional("host", &o.host_mbit);
  for (const char* link : {"coordinator", "host"}) {
    const double mbit = std::string(link) == "host" ? o.host_mbit : o.coordinator_mbit;
    if (!(mbit > 0)) links.fail(link, "must be > 0 Mbit/s, got " + std::to_string(mbit));
  }
  for (const OptionReader* part : {&r, &slurm, &emulate, &links}) {
    FLIGHT_RETURN_IF_ERROR(part->finish());
  }
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

}  // namespace flight::deploy
