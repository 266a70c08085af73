// The `flight` binary: run | serve | endpoint | topo | data | bench.
// Commands register themselves (command.h); main builds the CLI11 tree from
// the registrations, parses, and runs the chosen command's runner.
#include <iostream>
#include <map>
#include <vector>

#include "flight/base/logging.h"
#include "flight/bench/registry.h"
#include "flight/cli/command.h"

namespace flight::cli {
namespace {

std::vector<CommandSpec>& specs() {
  static std::vector<CommandSpec> s;
  return s;
}

const std::map<std::string, std::string>& parent_help() {
  static const std::map<std::string, std::string> h = {
      {"topo", "Validate, inspect and generate topologies"},
      {"bench", "Benchmarks: one JSON line per case, with a baseline measured in the same run"},
      {"data", "Inspect datasets and partitions"},
  };
  return h;
}

}  // namespace

bool register_command(CommandSpec spec) {
  specs().push_back(std::move(spec));
  return true;
}

int fail(const std::string& message, int code) {
  std::string one_line = message;
  for (char& c : one_line) {
    if (c == '\n') c = ' ';
  }
  std::cerr << "flight: error: " << one_line << std::endl;
  return code;
}

int main_impl(int argc, char** argv) {
  CLI::App app{"Flight: hierarchical federated learning over FaaS control and proxied data",
               "flight"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "flight 0.1.0");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();

  // `flight bench NAME`: one subcommand per registered bench (flight/bench).
  for (const auto& b : bench::benches()) specs().push_back({b.parent, b.name, b.help, b.setup});

  std::map<std::string, CLI::App*> parents;
  std::vector<std::pair<CLI::App*, Runner>> runners;
  runners.reserve(specs().size());
  for (const auto& spec : specs()) {
    CLI::App* parent = &app;
    if (!spec.parent.empty()) {
      auto it = parents.find(spec.parent);
      if (it == parents.end()) {
        auto help = parent_help().count(spec.parent) ? parent_help().at(spec.parent) : spec.parent;
        CLI::App* p = app.add_subcommand(spec.parent, help);
        p->require_subcommand(1);
        it = parents.emplace(spec.parent, p).first;
      }
      parent = it->second;
    }
    CLI::App* sub = parent->add_subcommand(spec.name, spec.help);
    runners.emplace_back(sub, spec.setup(sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }

  Status st = init_logging(log_level);
  if (!st.is_ok()) return usage_error(st.message());

  for (auto& [sub, runner] : runners) {
    if (sub->parsed()) {
      try {
        return runner();
      } catch (const std::exception& e) {
        return fail(e.what());
      }
    }
  }
  return usage_error("no command given (see flight --help)");
}

}  // namespace flight::cli

int main(int argc, char** argv) { return flight::cli::main_impl(argc, argv); }
