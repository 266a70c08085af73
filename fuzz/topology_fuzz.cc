// libFuzzer target: the topology loader, YAML and JSON. Any input must give a
// Topology or a Status, never a crash, hang or leak; a Topology that loads
// must save to YAML that loads back to the same nodes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flight/base/check.h"
#include "topology/topology.h"

namespace {

void round_trip(const flight::topology::Topology& t) {
  auto again = flight::topology::Topology::parse_yaml(t.to_yaml(), "<saved>");
  FLIGHT_CHECK(again.is_ok(),
               "a loaded topology saved to YAML that does not load: " + again.status().to_string());
  FLIGHT_CHECK(again->size() == t.size(), "round trip changed the node count");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
#if defined(FLIGHT_FUZZ_JSON)
  auto t = flight::topology::Topology::parse_json(text, "<fuzz>");
#else
  auto t = flight::topology::Topology::parse_yaml(text, "<fuzz>");
#endif
  if (t.is_ok()) round_trip(*t);
  return 0;
}
