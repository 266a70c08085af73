// libFuzzer target: the control plane's JSON messages — task specs and
// results (as the REST invoker reads them), the service / invoker / endpoint
// options and the replies the endpoint agent reads. Any JSON must give a value
// or a Status; a spec or result that parses must round-trip through to_json.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "flight/base/check.h"
#include "flight/faas/endpoint_agent.h"
#include "flight/faas/invoker.h"
#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"

using namespace flight::faas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  if (auto spec = TaskSpec::from_json(j); spec.is_ok()) {
    auto again = TaskSpec::from_json(spec->to_json());
    FLIGHT_CHECK(again.is_ok(), "TaskSpec round trip: " + again.status().to_string());
  }
  if (auto r = TaskResult::from_json(j); r.is_ok()) {
    auto again = TaskResult::from_json(r->to_json());
    FLIGHT_CHECK(again.is_ok(), "TaskResult round trip: " + again.status().to_string());
  }
  (void)ServiceOptions::from_json(j);
  (void)RestInvokerOptions::from_json(j);
  (void)EndpointAgentOptions::from_json(j);
  return 0;
}
