// libFuzzer target: the experiment config (`flight run CONFIG`). The input is
// written to a file (the loader reads paths) and loaded; any input must give a
// config or a Status. A config that loads must load back from its own
// resolved JSON.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "flight/base/check.h"
#include "flight/engine/config.h"

namespace {

const std::string& scratch() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/flight-config-fuzz-" + std::to_string(getpid()) +
           ".yaml";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(scratch(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto c = flight::engine::ExperimentConfig::load(scratch());
  if (c.is_ok()) {
    auto again = flight::engine::ExperimentConfig::from_json(c->to_json(), "<resolved>", "/");
    FLIGHT_CHECK(again.is_ok(),
                 "a loaded config's resolved JSON does not load: " + again.status().to_string());
  }
  return 0;
}
