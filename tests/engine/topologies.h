// Test topologies shared by the engine suites: eight workers under two
// aggregators (each aggregator and its workers on one endpoint), and the same
// eight workers flat under the coordinator (hierarchical == flat checks).
#pragma once

namespace flight::engine {

// coordinator -> agg-a {w1..w4}, agg-b {w5..w8}
inline const char* kThreeTier = R"(coordinator:
  kind: coordinator
  children: [agg-a, agg-b]
agg-a: {kind: aggregator, children: [w1, w2, w3, w4], endpoint: edge-a}
agg-b: {kind: aggregator, children: [w5, w6, w7, w8], endpoint: edge-b}
w1: {kind: worker, endpoint: edge-a}
w2: {kind: worker, endpoint: edge-a}
w3: {kind: worker, endpoint: edge-a}
w4: {kind: worker, endpoint: edge-a}
w5: {kind: worker, endpoint: edge-b}
w6: {kind: worker, endpoint: edge-b}
w7: {kind: worker, endpoint: edge-b}
w8: {kind: worker, endpoint: edge-b}
)";

// The same eight workers, in the same order, directly under the coordinator.
inline const char* kFlat = R"(coordinator:
  kind: coordinator
  children: [w1, w2, w3, w4, w5, w6, w7, w8]
w1: {kind: worker}
w2: {kind: worker}
w3: {kind: worker}
w4: {kind: worker}
w5: {kind: worker}
w6: {kind: worker}
w7: {kind: worker}
w8: {kind: worker}
)";

}  // namespace flight::engine
