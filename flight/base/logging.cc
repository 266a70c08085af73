#include "flight/base/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace flight {

Status init_logging(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str maps unknown names to "off"; only accept "off" when asked for.
  if (lvl == spdlog::level::off && level != "off") {
    return invalid_argument("unknown log level '" + level +
                            "' (use trace, debug, info, warn, error or off)");
  }
  auto logger = spdlog::stderr_color_mt("flight");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_level(lvl);
  return Status::ok();
}

}  // namespace flight
