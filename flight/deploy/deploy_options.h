// DeployOptions: the `deploy:` section of an experiment config — how many host
// processes a run spans, which topology node runs on which host, and which
// launcher starts the hosts. Parsed in exactly one place (from_json, with
// flight/base/options.h); every
// field has a documented default.
//
//   deploy:
//     launcher: embedded        # embedded | processes | slurm | mpi (flight run --launcher)
//     hosts: 2                  # endpoint host processes (mpi: the world size - 1)
//     placement: subtree        # subtree | round_robin (explicit `endpoint:` still wins)
//     threads: 0                # task threads per host process; 0 = the config's `threads`
//     address: ""               # address the coordinator's service and Redis listen on and
//                               # advertise; "" = 127.0.0.1 (processes) or this host's name
//     register_timeout_s: 600   # wait this long for every host to register
//     slurm:                    # launcher: slurm
//       nodes: 0                # sbatch --nodes; 0 = let Slurm choose
//       tasks_per_node: 0       # sbatch --ntasks-per-node; 0 = not set
//       partition: ""           # sbatch --partition
//       time: ""                # sbatch --time, e.g. "00:30:00"
//       extra: []               # more "#SBATCH ..." option strings, e.g. ["--account=ml"]
//     emulate:                  # launcher processes: hosts in network namespaces (root)
//       links: {coordinator: 1000, host: 100}   # link caps in Mbit/s, each direction
//       prefix: flemu           # namespace names <prefix>-coord, <prefix>-h<i>, <prefix>-br
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/options.h"
#include "flight/base/status.h"

namespace flight::deploy {

struct SlurmOptions {
  int64_t nodes = 0;
  int64_t tasks_per_node = 0;
  std::string partition;
  std::string time;
  std::vector<std::string> extra;
  nlohmann::json to_json() const;
};

struct DeployOptions {
  std::string launcher = "embedded";
  int64_t hosts = 2;
  std::string placement = "subtree";
  int64_t threads = 0;
  std::string address;
  double register_timeout_s = 600;
  SlurmOptions slurm;
  // deploy.emulate; `emulate` is false when the section is absent.
  bool emulate = false;
  double coordinator_mbit = 1000;
  double host_mbit = 100;
  std::string emulate_prefix = "flemu";

  Status validate() const;
  // `j` is the raw `deploy:` section (null or an object). Errors name the
  // field ("deploy.slurm.partiton: unknown key, did you mean ..."); with
  // `lines` (the config file's, where the section sits at /deploy) they start
  // with the field's "file:line: ".
  static StatusOr<DeployOptions> from_json(const nlohmann::json& j,
                                           const SourceLines* lines = nullptr);
  nlohmann::json to_json() const;
};

}  // namespace flight::deploy
