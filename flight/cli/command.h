// Subcommand registration for the `flight` binary.
//
// Each command lives in its own .cc file in flight/cli and registers itself
// with FLIGHT_COMMAND at static-initialisation time (the files are compiled
// straight into the executable, so nothing is dropped by the linker):
//
//   FLIGHT_COMMAND(topo_validate, {"topo", "validate", "Validate topology files",
//       [](CLI::App* app) {
//         auto files = std::make_shared<std::vector<std::string>>();
//         app->add_option("files", *files)->required();
//         return [files] { return validate(*files); };
//       }});
//
// `parent` nests commands: "" for top level (`flight run`), "topo" for
// `flight topo validate`, "bench" for `flight bench transport`. Parents are
// created on demand. The runner returns the process exit code: 0 ok,
// 1 runtime failure, 2 usage error (see usage_error()).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace flight::cli {

using Runner = std::function<int()>;

struct CommandSpec {
  std::string parent;  // "" (top level), "topo", "bench", ...
  std::string name;
  std::string help;
  std::function<Runner(CLI::App*)> setup;  // adds options, returns the runner
};

bool register_command(CommandSpec spec);

// Exit codes.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints "flight: error: <message>" on one line to stderr and returns `code`.
int fail(const std::string& message, int code = kExitFailure);
inline int usage_error(const std::string& message) { return fail(message, kExitUsage); }

}  // namespace flight::cli

#define FLIGHT_COMMAND(id, ...) \
  static const bool flight_command_registered_##id = ::flight::cli::register_command(__VA_ARGS__)
