// One short command (sbatch, squeue, scancel, ip, tc) run to completion.
// Internal to flight/deploy.
#pragma once

#include <string>
#include <vector>

#include "flight/base/status.h"

namespace flight::deploy {

// Runs argv (argv[0] looked up in PATH) and returns its stdout. Its stderr is
// appended to `err_log` (dropped when empty); a non-zero exit is Unavailable
// naming the command, its exit code and that log's contents.
StatusOr<std::string> run_command(const std::vector<std::string>& argv,
                                  const std::string& err_log = "");

}  // namespace flight::deploy
