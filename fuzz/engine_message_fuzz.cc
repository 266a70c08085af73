// libFuzzer target: the engine's typed task messages (flight/engine/messages.h)
// as a task function receives them from another process: train / aggregate /
// evaluate arguments and results. Any JSON must give a message or a Status; a
// message that parses must read back from its own to_json().
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "flight/base/check.h"
#include "flight/engine/messages.h"

namespace {

template <class Message>
void round_trip(const nlohmann::json& j, const char* what) {
  auto m = Message::from_json(j);
  if (!m.is_ok()) return;
  auto again = Message::from_json(m->to_json());
  FLIGHT_CHECK(again.is_ok(), std::string(what) + " round trip: " + again.status().to_string());
  FLIGHT_CHECK(again->to_json() == m->to_json(), std::string(what) + " round trip changed it");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  using namespace flight::engine;
  round_trip<TrainArgs>(j, "TrainArgs");
  round_trip<TrainResult>(j, "TrainResult");
  round_trip<AggregateArgs>(j, "AggregateArgs");
  round_trip<AggregateResult>(j, "AggregateResult");
  round_trip<EvaluateArgs>(j, "EvaluateArgs");
  round_trip<EvaluateResult>(j, "EvaluateResult");
  round_trip<PutTarget>(j, "PutTarget");
  return 0;
}
