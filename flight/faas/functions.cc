#include "flight/faas/functions.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/base/options.h"

namespace flight::faas {

void FunctionRegistry::add(const std::string& name, Function f) {
  FLIGHT_CHECK(!name.empty(), "function name must not be empty");
  FLIGHT_CHECK(f != nullptr, "function '" + name + "' is empty");
  std::lock_guard<std::mutex> lock(mu_);
  functions_[name] = std::move(f);
  typed_.erase(name);
}

void FunctionRegistry::add_typed(const std::string& name, Function f, TypedFunction typed) {
  FLIGHT_CHECK(typed != nullptr, "typed function '" + name + "' is empty");
  add(name, std::move(f));
  std::lock_guard<std::mutex> lock(mu_);
  typed_[name] = std::move(typed);
}

TypedFunction FunctionRegistry::find_typed(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = typed_.find(name);
  return it == typed_.end() ? nullptr : it->second;
}

StatusOr<Function> FunctionRegistry::find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = functions_.find(name);
  if (it != functions_.end()) return it->second;
  std::vector<std::string> known;
  for (const auto& kv : functions_) known.push_back(kv.first);
  return not_found("unknown function '" + name + "'" + did_you_mean(name, known) +
                   " (registered: " + join(known, ", ") + ")");
}

bool FunctionRegistry::contains(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return functions_.count(name) != 0;
}

std::vector<std::string> FunctionRegistry::names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& kv : functions_) out.push_back(kv.first);
  return out;
}

namespace {

// Sleeps in short slices so cancellation is noticed promptly. Returns the
// seconds actually slept.
double cooperative_sleep(double seconds, const TaskContext& ctx,
                         const std::function<bool()>& stop_early = nullptr) {
  Stopwatch sw;
  while (sw.seconds() < seconds) {
    if (ctx.cancelled() || (stop_early && stop_early())) break;
    double left = seconds - sw.seconds();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(left, 0.005)));
  }
  return sw.seconds();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

void add_builtin_functions(FunctionRegistry& registry) {
  registry.add("noop", [](const nlohmann::json&, const TaskContext&) -> StatusOr<nlohmann::json> {
    return nlohmann::json(nullptr);
  });
  registry.add("echo",
               [](const nlohmann::json& args, const TaskContext&) -> StatusOr<nlohmann::json> {
                 return args;
               });
  registry.add("sleep",
               [](const nlohmann::json& args, const TaskContext& ctx) -> StatusOr<nlohmann::json> {
                 OptionReader reader(args, "sleep args");
                 double seconds = 0;
                 reader.required("seconds", &seconds);
                 if (seconds < 0) reader.fail("seconds", "must be >= 0");
                 FLIGHT_RETURN_IF_ERROR(reader.finish());
                 double slept = cooperative_sleep(seconds, ctx);
                 if (ctx.cancelled())
                   return cancelled("sleep cancelled after " + std::to_string(slept) + " s");
                 return nlohmann::json{{"slept_s", slept}};
               });
  registry.add("fail",
               [](const nlohmann::json& args, const TaskContext&) -> StatusOr<nlohmann::json> {
                 OptionReader reader(args, "fail args");
                 std::string message = "failed on request";
                 bool do_throw = false;
                 reader.optional("message", &message);
                 reader.optional("throw", &do_throw);
                 FLIGHT_RETURN_IF_ERROR(reader.finish());
                 if (do_throw) throw std::runtime_error(message);
                 return internal_error(message);
               });
  registry.add(
      "wait_file",
      [](const nlohmann::json& args, const TaskContext& ctx) -> StatusOr<nlohmann::json> {
        OptionReader reader(args, "wait_file args");
        std::string path;
        double timeout_s = 60;
        reader.required("path", &path);
        reader.optional("timeout_s", &timeout_s);
        FLIGHT_RETURN_IF_ERROR(reader.finish());
        {
          std::ofstream started(path + ".started");
          started << getpid() << "\n";
        }
        std::error_code ec;
        double waited =
            cooperative_sleep(timeout_s, ctx, [&] { return std::filesystem::exists(path, ec); });
        if (std::filesystem::exists(path, ec)) {
          return nlohmann::json{{"pid", static_cast<int64_t>(getpid())}, {"waited_s", waited}};
        }
        if (ctx.cancelled()) return cancelled("wait_file cancelled while waiting for " + path);
        return deadline_exceeded("wait_file: '" + path + "' did not appear within " +
                                 std::to_string(timeout_s) + " s");
      });
}

FunctionRegistry& default_functions() {
  static FunctionRegistry* registry = [] {
    auto* r = new FunctionRegistry();  // never destroyed: used by detached threads at exit
    add_builtin_functions(*r);
    r->add("info", [r](const nlohmann::json&, const TaskContext&) -> StatusOr<nlohmann::json> {
      return nlohmann::json{{"pid", static_cast<int64_t>(getpid())},
                            {"host", host_name()},
                            {"functions", r->names()}};
    });
    return r;
  }();
  return *registry;
}

StatusOr<nlohmann::json> run_function(const FunctionRegistry& registry, const std::string& name,
                                      const nlohmann::json& args, const TaskContext& ctx) {
  FLIGHT_ASSIGN_OR_RETURN(Function f, registry.find(name));
  try {
    return f(args, ctx);
  } catch (const std::exception& e) {
    return internal_error(name + " threw: " + e.what());
  } catch (...) {
    return internal_error(name + " threw a non-standard exception");
  }
}

}  // namespace flight::faas
