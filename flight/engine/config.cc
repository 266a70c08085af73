#include "flight/engine/config.h"

#include <filesystem>
#include <set>

#include "flight/base/strings.h"
#include "flight/engine/yaml_json.h"

namespace flight::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Walks a config document, remembering where each value came from so that
// every error can say file:line.
class Reader {
 public:
  Reader(const YamlDocument& doc) : doc_(doc) {}

  Status error(const std::string& pointer, const std::string& message) const {
    return invalid_argument(doc_.where(pointer) + message);
  }

  // Unknown keys of the object at `pointer` -> error naming the key and line.
  Status check_keys(const json& obj, const std::string& pointer,
                    const std::vector<std::string>& known) const {
    if (!obj.is_object()) {
      return error(pointer, "'" + label(pointer) + "' must be a mapping, got " + obj.type_name());
    }
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        return error(pointer + "/" + it.key(), "unknown key '" + it.key() + "' in " +
                                                   (pointer.empty() ? "config" : label(pointer)) +
                                                   did_you_mean(it.key(), known));
      }
    }
    return Status::ok();
  }

  template <typename T>
  Status get(const json& obj, const std::string& pointer, const char* key, T* out) const {
    if (!obj.contains(key) || obj[key].is_null()) return Status::ok();
    try {
      *out = obj[key].get<T>();
      return Status::ok();
    } catch (const json::exception&) {
      return error(pointer + "/" + key,
                   "'" + std::string(key) + "' has the wrong type (" + obj[key].type_name() + ")");
    }
  }

  // Runs a layer's from_json and prefixes its error with file:line.
  template <typename T>
  Status section(const json& value, const std::string& pointer, T* out) const {
    auto parsed = T::from_json(value.is_null() ? json::object() : value);
    if (!parsed.is_ok()) return error(pointer, label(pointer) + ": " + parsed.status().message());
    *out = std::move(parsed).value();
    return Status::ok();
  }

  static std::string label(const std::string& pointer) {
    std::string s = pointer.empty() ? "config" : pointer.substr(1);
    for (char& c : s) {
      if (c == '/') c = '.';
    }
    return s;
  }

 private:
  const YamlDocument& doc_;
};

Status apply_override(YamlDocument& doc, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return invalid_argument("--set '" + assignment + "': expected key=value (e.g. rounds=5)");
  }
  std::string key = trim(assignment.substr(0, eq));
  json value = parse_yaml_scalar(assignment.substr(eq + 1));
  json* node = &doc.value;
  if (!node->is_object()) *node = json::object();
  auto parts = split(key, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) return invalid_argument("--set '" + assignment + "': empty key part");
    if (i + 1 == parts.size()) {
      (*node)[parts[i]] = value;
    } else {
      json& next = (*node)[parts[i]];
      if (next.is_string() && parts[i] == "control") next = json{{next.get<std::string>(), nullptr}};
      if (!next.is_object()) next = json::object();
      node = &next;
    }
  }
  std::string pointer;
  for (const auto& p : parts) pointer += "/" + p;
  doc.lines[pointer] = 0;
  return Status::ok();
}

Status parse(const YamlDocument& doc, const std::string& base_dir, ExperimentConfig* c) {
  Reader r(doc);
  const json& j = doc.value;
  if (!j.is_object()) return r.error("", "an experiment config must be a mapping of keys");
  FLIGHT_RETURN_IF_ERROR(r.check_keys(j, "", {"name", "seed", "topology", "model", "data", "train",
                                             "strategy", "rounds", "mode", "control",
                                             "data_plane", "faults", "output", "eval", "async",
                                             "heterogeneity", "clock", "virtual_sample_rate",
                                             "threads", "debug"}));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "clock", &c->clock));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "virtual_sample_rate", &c->virtual_sample_rate));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "name", &c->name));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "seed", &c->seed));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "rounds", &c->rounds));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "mode", &c->mode));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "threads", &c->threads));
  FLIGHT_RETURN_IF_ERROR(r.get(j, "", "debug", &c->debug));

  // topology: a path or a generator spec.
  if (!j.contains("topology")) return r.error("", "missing 'topology' (a file or {generate: ...})");
  const json& topo = j["topology"];
  if (topo.is_string()) {
    fs::path p = topo.get<std::string>();
    c->topology.file = p.is_absolute() ? p.string() : (fs::path(base_dir) / p).lexically_normal().string();
  } else if (topo.is_object()) {
    if (topo.contains("file")) {
      FLIGHT_RETURN_IF_ERROR(r.check_keys(topo, "/topology", {"file"}));
      fs::path p = topo["file"].get<std::string>();
      c->topology.file = p.is_absolute() ? p.string() : (fs::path(base_dir) / p).lexically_normal().string();
    } else if (topo.contains("generate")) {
      c->topology.generate = topo;
    } else {
      return r.error("/topology", "topology must be a file path, {file: ...} or {generate: ...}");
    }
  } else {
    return r.error("/topology", "topology must be a file path or a mapping");
  }

  FLIGHT_RETURN_IF_ERROR(r.section(j.value("model", json::object()), "/model", &c->model));
  if (!c->model.torchscript.empty() && fs::path(c->model.torchscript).is_relative()) {
    c->model.torchscript = (fs::path(base_dir) / c->model.torchscript).lexically_normal().string();
  }
  FLIGHT_RETURN_IF_ERROR(r.section(j.value("data", json::object()), "/data", &c->data));
  FLIGHT_RETURN_IF_ERROR(r.section(j.value("train", json::object()), "/train", &c->train));
  FLIGHT_RETURN_IF_ERROR(r.section(j.value("strategy", json::object()), "/strategy", &c->strategy));
  // Building the strategy validates its name and parameters now, with a line,
  // rather than at the first round.
  auto strategy = aggregators::make_strategy(c->strategy);
  if (!strategy.is_ok()) return r.error("/strategy", "strategy: " + strategy.status().message());

  if (j.contains("control") && !j["control"].is_null()) {
    const json& ctl = j["control"];
    if (ctl.is_string()) {
      c->control.kind = ctl.get<std::string>();
    } else if (ctl.is_object()) {
      FLIGHT_RETURN_IF_ERROR(r.check_keys(ctl, "/control", {"local", "rest"}));
      if (ctl.contains("rest")) {
        c->control.kind = "rest";
        const json& rest = ctl["rest"];
        FLIGHT_RETURN_IF_ERROR(r.check_keys(rest, "/control/rest", {"url", "token_file"}));
        FLIGHT_RETURN_IF_ERROR(r.get(rest, "/control/rest", "url", &c->control.url));
        FLIGHT_RETURN_IF_ERROR(r.get(rest, "/control/rest", "token_file", &c->control.token_file));
        if (!c->control.token_file.empty() && fs::path(c->control.token_file).is_relative()) {
          c->control.token_file = (fs::path(base_dir) / c->control.token_file).lexically_normal().string();
        }
      } else {
        c->control.kind = "local";
      }
    } else {
      return r.error("/control", "control must be 'local' or {rest: {url, token_file}}");
    }
    if (c->control.kind != "local" && c->control.kind != "rest") {
      return r.error("/control", "unknown control plane '" + c->control.kind + "'" +
                                     did_you_mean(c->control.kind, {"local", "rest"}) +
                                     " (use local or rest)");
    }
  }

  if (j.contains("data_plane")) {
    const json& dp = j["data_plane"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(dp, "/data_plane", {"connector", "connectors"}));
    if (dp.contains("connector")) c->data_plane.connector = dp["connector"];
    if (dp.contains("connectors")) {
      if (!dp["connectors"].is_object()) {
        return r.error("/data_plane/connectors", "connectors must map names to connector configs");
      }
      c->data_plane.connectors = dp["connectors"];
    }
    if (c->data_plane.connector.is_string()) {
      std::string name = c->data_plane.connector.get<std::string>();
      if (!c->data_plane.connectors.contains(name)) {
        return r.error("/data_plane/connector", "connector '" + name + "' is not in data_plane.connectors");
      }
    }
  }

  if (j.contains("faults")) {
    const json& f = j["faults"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(f, "/faults", {"round_deadline_s", "min_fraction",
                                                        "on_insufficient", "max_round_retries",
                                                        "task_retries"}));
    FLIGHT_RETURN_IF_ERROR(r.get(f, "/faults", "round_deadline_s", &c->faults.round_deadline_s));
    FLIGHT_RETURN_IF_ERROR(r.get(f, "/faults", "min_fraction", &c->faults.min_fraction));
    FLIGHT_RETURN_IF_ERROR(r.get(f, "/faults", "on_insufficient", &c->faults.on_insufficient));
    FLIGHT_RETURN_IF_ERROR(r.get(f, "/faults", "max_round_retries", &c->faults.max_round_retries));
    FLIGHT_RETURN_IF_ERROR(r.get(f, "/faults", "task_retries", &c->faults.task_retries));
  }
  if (j.contains("output")) {
    const json& o = j["output"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(o, "/output", {"dir", "checkpoint_every", "save_model"}));
    FLIGHT_RETURN_IF_ERROR(r.get(o, "/output", "dir", &c->output.dir));
    FLIGHT_RETURN_IF_ERROR(r.get(o, "/output", "checkpoint_every", &c->output.checkpoint_every));
    FLIGHT_RETURN_IF_ERROR(r.get(o, "/output", "save_model", &c->output.save_model));
  }
  if (c->output.dir.empty()) c->output.dir = "runs/" + c->name;
  if (j.contains("eval")) {
    const json& e = j["eval"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(e, "/eval", {"every", "batch_size"}));
    FLIGHT_RETURN_IF_ERROR(r.get(e, "/eval", "every", &c->eval.every));
    FLIGHT_RETURN_IF_ERROR(r.get(e, "/eval", "batch_size", &c->eval.batch_size));
  }

  if (j.contains("async")) {
    const json& a = j["async"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(a, "/async", {"max_updates", "max_seconds", "eval_every",
                                                       "aggregator_buffer"}));
    FLIGHT_RETURN_IF_ERROR(r.get(a, "/async", "max_updates", &c->async.max_updates));
    FLIGHT_RETURN_IF_ERROR(r.get(a, "/async", "max_seconds", &c->async.max_seconds));
    FLIGHT_RETURN_IF_ERROR(r.get(a, "/async", "eval_every", &c->async.eval_every));
    FLIGHT_RETURN_IF_ERROR(r.get(a, "/async", "aggregator_buffer", &c->async.aggregator_buffer));
  }
  if (j.contains("heterogeneity")) {
    const json& h = j["heterogeneity"];
    FLIGHT_RETURN_IF_ERROR(r.check_keys(h, "/heterogeneity", {"speed_sigma", "dropout"}));
    FLIGHT_RETURN_IF_ERROR(r.get(h, "/heterogeneity", "speed_sigma", &c->heterogeneity.speed_sigma));
    FLIGHT_RETURN_IF_ERROR(r.get(h, "/heterogeneity", "dropout", &c->heterogeneity.dropout));
  }

  Status v = c->validate();
  if (!v.is_ok()) return invalid_argument(doc.source + ": " + v.message());
  return Status::ok();
}

}  // namespace

nlohmann::json TopologyConfig::to_json() const {
  if (!file.empty()) return file;
  return generate;
}

nlohmann::json ControlConfig::to_json() const {
  if (kind == "local") return "local";
  return json{{"rest", {{"url", url}, {"token_file", token_file}}}};
}

nlohmann::json DataPlaneConfig::to_json() const {
  return json{{"connector", connector}, {"connectors", connectors}};
}

nlohmann::json FaultsConfig::to_json() const {
  return json{{"round_deadline_s", round_deadline_s}, {"min_fraction", min_fraction},
              {"on_insufficient", on_insufficient}, {"max_round_retries", max_round_retries},
              {"task_retries", task_retries}};
}

nlohmann::json OutputConfig::to_json() const {
  return json{{"dir", dir}, {"checkpoint_every", checkpoint_every}, {"save_model", save_model}};
}

nlohmann::json AsyncConfig::to_json() const {
  return json{{"max_updates", max_updates},
              {"max_seconds", max_seconds},
              {"eval_every", eval_every},
              {"aggregator_buffer", aggregator_buffer}};
}

nlohmann::json HeterogeneityConfig::to_json() const {
  return json{{"speed_sigma", speed_sigma}, {"dropout", dropout}};
}

nlohmann::json EvalConfig::to_json() const {
  return json{{"every", every}, {"batch_size", batch_size}};
}

Status ExperimentConfig::validate() const {
  if (name.empty()) return invalid_argument("name must not be empty");
  if (rounds < 1) return invalid_argument("rounds must be at least 1, got " + std::to_string(rounds));
  if (mode != "sync" && mode != "async") {
    return invalid_argument("mode must be sync or async, got '" + mode + "'" +
                            did_you_mean(mode, {"sync", "async"}));
  }
  if (threads < 1 || threads > 1024) {
    return invalid_argument("threads must be in [1, 1024], got " + std::to_string(threads));
  }
  if (control.kind == "rest" && control.url.empty()) {
    return invalid_argument("control.rest.url is required for the REST control plane");
  }
  if (!(faults.min_fraction > 0 && faults.min_fraction <= 1)) {
    return invalid_argument("faults.min_fraction must be in (0, 1]");
  }
  if (faults.round_deadline_s < 0) return invalid_argument("faults.round_deadline_s must be >= 0");
  if (faults.on_insufficient != "stop" && faults.on_insufficient != "retry") {
    return invalid_argument("faults.on_insufficient must be stop or retry, got '" +
                            faults.on_insufficient + "'");
  }
  if (faults.max_round_retries < 0 || faults.task_retries < 0) {
    return invalid_argument("faults retries must be >= 0");
  }
  if (output.checkpoint_every < 0) return invalid_argument("output.checkpoint_every must be >= 0");
  if (async.max_updates < 1) return invalid_argument("async.max_updates must be >= 1");
  if (async.max_seconds < 0) return invalid_argument("async.max_seconds must be >= 0");
  if (async.eval_every < 1) return invalid_argument("async.eval_every must be >= 1");
  if (async.aggregator_buffer < 1) return invalid_argument("async.aggregator_buffer must be >= 1");
  if (clock != "real" && clock != "virtual") {
    return invalid_argument("clock must be real or virtual, got '" + clock + "'" +
                            did_you_mean(clock, {"real", "virtual"}));
  }
  if (!(virtual_sample_rate > 0)) return invalid_argument("virtual_sample_rate must be > 0");
  if (heterogeneity.speed_sigma < 0) return invalid_argument("heterogeneity.speed_sigma must be >= 0");
  if (!(heterogeneity.dropout >= 0 && heterogeneity.dropout < 1)) {
    return invalid_argument("heterogeneity.dropout must be in [0, 1)");
  }
  if (eval.every < 1 || eval.batch_size < 1) {
    return invalid_argument("eval.every and eval.batch_size must be >= 1");
  }
  return Status::ok();
}

nlohmann::json ExperimentConfig::to_json() const {
  return json{{"name", name},
              {"seed", seed},
              {"topology", topology.to_json()},
              {"model", model.to_json()},
              {"data", data.to_json()},
              {"train", train.to_json()},
              {"strategy", strategy.to_json()},
              {"rounds", rounds},
              {"mode", mode},
              {"control", control.to_json()},
              {"data_plane", data_plane.to_json()},
              {"faults", faults.to_json()},
              {"output", output.to_json()},
              {"eval", eval.to_json()},
              {"async", async.to_json()},
              {"heterogeneity", heterogeneity.to_json()},
              {"clock", clock},
              {"virtual_sample_rate", virtual_sample_rate},
              {"threads", threads},
              {"debug", debug}};
}

StatusOr<ExperimentConfig> ExperimentConfig::load(const std::string& path,
                                                  const std::vector<std::string>& overrides) {
  FLIGHT_ASSIGN_OR_RETURN(YamlDocument doc, load_yaml_document(path));
  for (const auto& o : overrides) FLIGHT_RETURN_IF_ERROR(apply_override(doc, o));
  ExperimentConfig c;
  std::string base = fs::path(path).parent_path().string();
  FLIGHT_RETURN_IF_ERROR(parse(doc, base.empty() ? "." : base, &c));
  return c;
}

StatusOr<ExperimentConfig> ExperimentConfig::from_json(const nlohmann::json& j,
                                                       const std::string& source,
                                                       const std::string& base_dir) {
  YamlDocument doc;
  doc.value = j;
  doc.source = source;
  ExperimentConfig c;
  FLIGHT_RETURN_IF_ERROR(parse(doc, base_dir, &c));
  return c;
}

}  // namespace flight::engine
