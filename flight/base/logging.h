// Logging goes through spdlog (stderr). Call init_logging once from main.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "flight/base/status.h"

namespace flight {

// level: trace|debug|info|warn|error|off. Unknown levels are InvalidArgument.
Status init_logging(const std::string& level);

}  // namespace flight
