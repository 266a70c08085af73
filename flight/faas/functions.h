// Functions an invoker can run, registered by name. Args and results are JSON
// (model weights travel as transport Refs inside them, never inline).
//
// default_functions() is the process-wide registry used by LocalInvoker and by
// `flight endpoint`. It starts with diagnostic builtins (used by tests and
// benchmarks):
//   noop                          -> null
//   echo       any args           -> the args
//   sleep      {"seconds": S}     -> {"slept_s": S'}; stops early when cancelled
//   fail       {"message": M, "throw": false}
//                                 -> error M (thrown as std::runtime_error if throw)
//   wait_file  {"path": P, "timeout_s": 60}
//                                 -> creates P + ".started", waits until P exists
//                                    (or cancellation / timeout), returns
//                                    {"pid", "waited_s"}
//   info                          -> {"pid", "host", "functions"}
// The engine adds train / aggregate / evaluate at startup via add().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::faas {

struct TaskContext {
  std::string task_id;
  std::string endpoint;  // endpoint name the task was addressed to
  // True once the task was cancelled or its deadline passed; long functions
  // should poll it and return early (their result is discarded anyway).
  std::function<bool()> cancelled = [] { return false; };
  // The task's deadline in wall seconds (Unix epoch); 0 = none. Tells a
  // function that saw cancelled() whether its deadline passed or it was
  // cancelled, so it can say which.
  double deadline_at = 0;
};

using Function =
    std::function<StatusOr<nlohmann::json>(const nlohmann::json& args, const TaskContext&)>;
// The typed, in-process form of a function (see faas::Message in invoker.h).
class Message;
using TypedFunction = std::function<StatusOr<std::shared_ptr<const Message>>(const Message& args,
                                                                             const TaskContext&)>;

// Thread safety: all methods may be called concurrently.
class FunctionRegistry {
 public:
  FunctionRegistry() = default;

  // Registers `name`, replacing any function already registered under it
  // (so the engine can install its own train/aggregate over a default).
  // Empty names or empty functions are broken invariants.
  void add(const std::string& name, Function f);
  // As add(), with a typed form that in-process invokers call when the task
  // carries a Message. add() without one drops an earlier typed form, so a
  // JSON function registered over a typed one is the one that runs.
  void add_typed(const std::string& name, Function f, TypedFunction typed);
  // The typed form of `name`, or nullptr (no such function, or JSON only).
  TypedFunction find_typed(const std::string& name) const;
  // NotFound naming the function, with "did you mean" and the known names.
  StatusOr<Function> find(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

 private:
  mutable std::mutex mu_;
  std::map<std::string, Function> functions_;
  std::map<std::string, TypedFunction> typed_;
};

// Adds the diagnostic builtins listed above.
void add_builtin_functions(FunctionRegistry& registry);

// The process-wide registry, with the builtins.
FunctionRegistry& default_functions();

// Runs `name` from `registry` with error and exception capture: unknown names,
// error Statuses and exceptions all come back as an error Status whose message
// says what happened.
StatusOr<nlohmann::json> run_function(const FunctionRegistry& registry, const std::string& name,
                                      const nlohmann::json& args, const TaskContext& ctx);

}  // namespace flight::faas
