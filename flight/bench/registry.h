// The benchmarks behind `flight bench NAME` (and their helper process,
// `flight transport-peer`). Each bench lives in its own .cc file here and
// registers itself with FLIGHT_BENCH; the CLI (flight/cli/main.cc) makes one
// subcommand per registered bench and runs the chosen one. Benches print one
// JSON line per case (record.h).
//
//   FLIGHT_BENCH(bench_topology, {"topology", "Topology load, lookup, generation",
//       [](CLI::App* app) {
//         auto a = std::make_shared<Args>();
//         app->add_option("--nodes", a->nodes, "Nodes");
//         return [a] { return run(*a); };
//       }});
//
// The library is an OBJECT library linked into the `flight` binary, so the
// registrations are never dropped by the linker.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace flight::bench {

using Runner = std::function<int()>;

struct BenchSpec {
  std::string name;  // `flight bench NAME`
  std::string help;
  std::function<Runner(CLI::App*)> setup;  // adds the bench's options, returns its runner
  std::string parent = "bench";            // "" for a top-level helper command
};

bool register_bench(BenchSpec spec);
const std::vector<BenchSpec>& benches();

// Exit codes, as the CLI's.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints "flight bench: error: <message>" on one line to stderr and returns `code`.
int fail(const std::string& message, int code = kExitFailure);
inline int usage_error(const std::string& message) { return fail(message, kExitUsage); }

}  // namespace flight::bench

#define FLIGHT_BENCH(id, ...) \
  static const bool flight_bench_registered_##id = ::flight::bench::register_bench(__VA_ARGS__)
