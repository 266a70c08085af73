#include "flight/engine/config.h"

#include <algorithm>
#include <filesystem>

#include "flight/base/strings.h"
#include "flight/engine/dp_hooks.h"
#include "flight/engine/job.h"
#include "flight/engine/secure_options.h"
#include "flight/engine/yaml_json.h"

namespace flight::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Absolute: the resolved config (a run directory's config.yaml) must load
// back from wherever it is written, not only from the original config's
// directory.
std::string resolve(const std::string& base_dir, const std::string& path) {
  fs::path p = path;
  if (p.is_absolute()) return p.lexically_normal().string();
  return fs::absolute(fs::path(base_dir) / p).lexically_normal().string();
}

// Appends "key: OLD -> NEW" for every leaf where `was` and `now` differ.
void diff_json(const json& was, const json& now, const std::string& key,
               std::vector<std::string>* out) {
  if (was.is_object() && now.is_object()) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : was.items()) keys.push_back(k);
    for (const auto& [k, v] : now.items()) {
      if (!was.contains(k)) keys.push_back(k);
    }
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) {
      const std::string sub = key.empty() ? k : key + "." + k;
      diff_json(was.contains(k) ? was[k] : json(), now.contains(k) ? now[k] : json(), sub, out);
    }
    return;
  }
  if (was == now) return;
  auto show = [](const json& v) { return v.is_null() ? std::string("(unset)") : v.dump(); };
  out->push_back(key + ": " + show(was) + " -> " + show(now));
}

// Runs a layer's from_json on the section at `key` (absent: {}) and prefixes
// its error with the section's file:line (and the section's name unless the
// layer's message already starts with it).
template <typename T>
Status section(OptionReader& r, const char* key, T* out) {
  json value = json::object();
  r.optional(key, &value);
  auto parsed = T::from_json(value);
  if (parsed.is_ok()) {
    *out = std::move(parsed).value();
    return Status::ok();
  }
  const std::string& m = parsed.status().message();
  const std::string where = r.lines() ? r.lines()->where("/" + json_pointer_token(key)) : "";
  return invalid_argument(where + (starts_with(m, key) ? m : std::string(key) + ": " + m));
}

// Why privacy.dp cannot run with this config, or "".
std::string dp_conflict(const ExperimentConfig& c) {
  if (!c.dp) return "";
  if (c.mode == Mode::kAsync) {
    return "needs mode: sync (the accountant composes one sampled Gaussian step per round; "
           "async merges have no rounds to compose and no fixed cohort to average over)";
  }
  auto strategy = aggregators::make_strategy(c.strategy);
  if (strategy.is_ok() && ((*strategy)->needs_all_updates() || (*strategy)->is_async())) {
    return "strategy " + c.strategy.name +
           " is not a mean of the updates: DP noise is calibrated to the clipped updates' "
           "average (sensitivity C / m); a median, trimmed mean or krum choice has another "
           "sensitivity and would be neither private nor robust with this noise (use fedavg, "
           "fedprox, fedsgd, fedavgm, fedadam, fedyogi or fedadagrad)";
  }
  if (c.dp->adaptive && c.dp->placement == privacy::NoisePlacement::kLocal) {
    return "adaptive clipping with placement: local: each worker's clipped/unclipped bit "
           "reaches the coordinator un-noised, which local DP does not trust";
  }
  return "";
}

// Why compression cannot run with this config, or "". (One place for the
// compression compositions.)
std::string compression_conflict(const ExperimentConfig& c) {
  if (c.compression.encoding != transport::Encoding::kTopK) return "";
  if (c.mode == Mode::kAsync) {
    return "topk needs mode: sync (workers send deltas against the round's global model with "
           "a per-worker error-feedback residual; the async driver merges models against "
           "per-task base versions)";
  }
  auto strategy = aggregators::make_strategy(c.strategy);
  if (strategy.is_ok() && ((*strategy)->needs_all_updates() || (*strategy)->is_async())) {
    return "topk does not fit strategy " + c.strategy.name +
           ": workers send sparse deltas (1 coordinate in 1/topk_fraction), so a "
           "coordinate-wise median or trimmed mean is almost always 0 and krum's distances "
           "measure which coordinates were sent, not how far the updates are apart (use fedavg, "
           "fedprox, fedsgd, fedavgm, fedadam, fedyogi or fedadagrad)";
  }
  if (c.dp) {
    return "topk with privacy.dp: error feedback adds the residual of earlier rounds to the "
           "clipped delta, so the update sent is no longer bounded by clip_norm and the DP noise "
           "would not cover it (use fp16, bf16 or int8 with DP)";
  }
  return "";
}

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
      if (next.is_string() && parts[i] == "control")
        next = json{{next.get<std::string>(), nullptr}};
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
  const json& j = doc.value;
  if (!j.is_object()) {
    return invalid_argument(doc.where("") + "an experiment config must be a mapping of keys");
  }
  OptionReader r(j, "", &doc);
  json debug;
  r.optional("name", &c->name)
      .optional("seed", &c->seed)
      .optional("rounds", &c->rounds)
      .choice("mode", &c->mode, kModeNames)
      .optional("threads", &c->threads)
      .optional("debug", &debug)
      .choice("clock", &c->clock, kClockNames)
      .optional("virtual_sample_rate", &c->virtual_sample_rate)
      .known({"topology", "model", "data", "train", "strategy", "control", "deploy"});
  if (j.contains("control") && j["control"].is_string()) {
    r.choice("control", &c->control.kind, kControlNames);
  }
  OptionReader data_plane = r.child("data_plane");
  OptionReader faults = r.child("faults");
  OptionReader output = r.child("output");
  OptionReader eval = r.child("eval");
  OptionReader async = r.child("async");
  OptionReader heterogeneity = r.child("heterogeneity");
  OptionReader fold = r.child("fold");
  if (!debug.is_null()) {
    auto mode = debug_mode_from_json(debug);
    if (mode.is_ok()) {
      c->debug = *mode;
    } else {
      r.fail("debug", mode.status().message());
    }
  }
  OptionReader compression = r.child("compression");
  OptionReader privacy = r.child("privacy");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  // deploy: carried unparsed; flight/deploy owns its schema.
  if (j.contains("deploy") && !j["deploy"].is_null()) c->deploy = j["deploy"];
  fold.at_least("window", &c->fold.window, int64_t{0});
  FLIGHT_RETURN_IF_ERROR(fold.finish());
  c->lines = static_cast<const SourceLines&>(doc);

  // topology: a path or a generator spec.
  if (!r.has("topology")) return r.error("missing 'topology' (a file or {generate: ...})");
  const json& topo = j["topology"];
  if (topo.is_string()) {
    c->topology.file = resolve(base_dir, topo.get<std::string>());
  } else if (topo.is_object() && topo.contains("file")) {
    OptionReader t = r.child("topology");
    t.required("file", &c->topology.file);
    FLIGHT_RETURN_IF_ERROR(t.finish());
    c->topology.file = resolve(base_dir, c->topology.file);
  } else if (topo.is_object() && topo.contains("generate")) {
    c->topology.generate = topo;
  } else if (topo.is_object()) {
    return invalid_argument(r.label("topology") +
                            ": must be a file path, {file: ...} or {generate: ...}");
  } else {
    return invalid_argument(r.label("topology") + ": must be a file path or a mapping");
  }

  FLIGHT_RETURN_IF_ERROR(section(r, "model", &c->model));
  if (!c->model.torchscript.empty()) c->model.torchscript = resolve(base_dir, c->model.torchscript);
  FLIGHT_RETURN_IF_ERROR(section(r, "data", &c->data));
  FLIGHT_RETURN_IF_ERROR(section(r, "train", &c->train));
  FLIGHT_RETURN_IF_ERROR(section(r, "strategy", &c->strategy));
  // Building the strategy validates its name and parameters now, with a line,
  // rather than at the first round.
  auto strategy = aggregators::make_strategy(c->strategy);
  if (!strategy.is_ok()) {
    return invalid_argument(r.label("strategy") + ": " + strategy.status().message());
  }

  // control: local | {local: null} | {rest: {url, token_file}}
  if (r.has("control") && !j["control"].is_string()) {
    if (!j["control"].is_object()) {
      return invalid_argument(r.label("control") +
                              ": must be 'local' or {rest: {url, token_file}}");
    }
    OptionReader control = r.child("control");
    control.known({"local"});
    c->control.kind = control.has("rest") ? ControlKind::kRest : ControlKind::kLocal;
    OptionReader rest = control.child("rest");
    rest.optional("url", &c->control.url).optional("token_file", &c->control.token_file);
    FLIGHT_RETURN_IF_ERROR(rest.finish());
    FLIGHT_RETURN_IF_ERROR(control.finish());
    if (!c->control.token_file.empty()) {
      c->control.token_file = resolve(base_dir, c->control.token_file);
    }
  }

  data_plane.optional("connector", &c->data_plane.connector)
      .optional("connectors", &c->data_plane.connectors);
  if (!c->data_plane.connectors.is_object()) {
    data_plane.fail("connectors", "must map names to connector configs");
  }
  FLIGHT_RETURN_IF_ERROR(data_plane.finish());
  if (c->data_plane.connector.is_string()) {
    std::string name = c->data_plane.connector.get<std::string>();
    if (!c->data_plane.connectors.contains(name)) {
      return invalid_argument(data_plane.label("connector") + ": connector '" + name +
                              "' is not in data_plane.connectors");
    }
  }

  faults.optional("round_deadline_s", &c->faults.round_deadline_s)
      .optional("min_fraction", &c->faults.min_fraction)
      .choice("on_insufficient", &c->faults.on_insufficient, kOnInsufficientNames)
      .optional("max_round_retries", &c->faults.max_round_retries)
      .optional("task_retries", &c->faults.task_retries);
  FLIGHT_RETURN_IF_ERROR(faults.finish());
  output.optional("dir", &c->output.dir)
      .optional("checkpoint_every", &c->output.checkpoint_every)
      .optional("save_model", &c->output.save_model);
  FLIGHT_RETURN_IF_ERROR(output.finish());
  if (c->output.dir.empty()) c->output.dir = "runs/" + c->name;
  eval.optional("every", &c->eval.every).optional("batch_size", &c->eval.batch_size);
  FLIGHT_RETURN_IF_ERROR(eval.finish());
  async.optional("max_updates", &c->async.max_updates)
      .optional("max_seconds", &c->async.max_seconds)
      .optional("eval_every", &c->async.eval_every)
      .optional("aggregator_buffer", &c->async.aggregator_buffer);
  FLIGHT_RETURN_IF_ERROR(async.finish());
  heterogeneity.optional("speed_sigma", &c->heterogeneity.speed_sigma)
      .optional("dropout", &c->heterogeneity.dropout);
  FLIGHT_RETURN_IF_ERROR(heterogeneity.finish());
  FLIGHT_RETURN_IF_ERROR(read_compression(compression, &c->compression, &c->aggregator_fraction));
  json dp, secure;
  privacy.optional("dp", &dp).optional("secure_aggregation", &secure);
  FLIGHT_RETURN_IF_ERROR(privacy.finish());
  if (!dp.is_null()) {
    OptionReader dp_reader = privacy.child("dp");
    c->dp.emplace();
    FLIGHT_RETURN_IF_ERROR(read_dp_options(dp_reader, &*c->dp));
    const std::string why = dp_conflict(*c);
    if (!why.empty()) return invalid_argument(privacy.label("dp") + ": " + why);
  }
  const std::string clash = compression_conflict(*c);
  if (!clash.empty()) return invalid_argument(compression.label("encoding") + ": " + clash);
  if (!secure.is_null() && !(secure.is_boolean() && !secure.get<bool>())) {
    c->secure.emplace();
    if (!secure.is_boolean()) {
      OptionReader secure_reader = privacy.child("secure_aggregation");
      FLIGHT_RETURN_IF_ERROR(read_secure_options(secure_reader, &*c->secure));
    }
    const std::string why = secure_conflict(*c);
    if (!why.empty()) return invalid_argument(privacy.label("secure_aggregation") + ": " + why);
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
  if (kind == ControlKind::kLocal) return "local";
  return json{{"rest", {{"url", url}, {"token_file", token_file}}}};
}

nlohmann::json DataPlaneConfig::to_json() const {
  return json{{"connector", connector}, {"connectors", connectors}};
}

nlohmann::json FaultsConfig::to_json() const {
  return json{{"round_deadline_s", round_deadline_s},
              {"min_fraction", min_fraction},
              {"on_insufficient", to_string(on_insufficient)},
              {"max_round_retries", max_round_retries},
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
  if (rounds < 1)
    return invalid_argument("rounds must be at least 1, got " + std::to_string(rounds));
  if (threads < 1 || threads > 1024) {
    return invalid_argument("threads must be in [1, 1024], got " + std::to_string(threads));
  }
  if (control.kind == ControlKind::kRest && control.url.empty()) {
    return invalid_argument("control.rest.url is required for the REST control plane");
  }
  if (!(faults.min_fraction > 0 && faults.min_fraction <= 1)) {
    return invalid_argument("faults.min_fraction must be in (0, 1]");
  }
  if (faults.round_deadline_s < 0) return invalid_argument("faults.round_deadline_s must be >= 0");
  if (faults.max_round_retries < 0 || faults.task_retries < 0) {
    return invalid_argument("faults retries must be >= 0");
  }
  if (output.checkpoint_every < 0) return invalid_argument("output.checkpoint_every must be >= 0");
  if (async.max_updates < 1) return invalid_argument("async.max_updates must be >= 1");
  if (async.max_seconds < 0) return invalid_argument("async.max_seconds must be >= 0");
  if (async.eval_every < 1) return invalid_argument("async.eval_every must be >= 1");
  if (async.aggregator_buffer < 1) return invalid_argument("async.aggregator_buffer must be >= 1");
  if (!(virtual_sample_rate > 0)) return invalid_argument("virtual_sample_rate must be > 0");
  if (heterogeneity.speed_sigma < 0)
    return invalid_argument("heterogeneity.speed_sigma must be >= 0");
  if (!(heterogeneity.dropout >= 0 && heterogeneity.dropout < 1)) {
    return invalid_argument("heterogeneity.dropout must be in [0, 1)");
  }
  if (eval.every < 1 || eval.batch_size < 1) {
    return invalid_argument("eval.every and eval.batch_size must be >= 1");
  }
  if (fold.window < 0) {
    return invalid_argument("fold.window must be >= 0 (0 = auto), got " +
                            std::to_string(fold.window));
  }
  if (dp) {
    FLIGHT_RETURN_IF_ERROR(dp->validate().with_context("privacy"));
    const std::string why = dp_conflict(*this);
    if (!why.empty()) return invalid_argument("privacy.dp: " + why);
  }
  const std::string clash = compression_conflict(*this);
  if (!clash.empty()) return invalid_argument("compression.encoding: " + clash);
  if (secure) {
    FLIGHT_RETURN_IF_ERROR(secure->validate().with_context("privacy"));
    const std::string why = secure_conflict(*this);
    if (!why.empty()) return invalid_argument("privacy.secure_aggregation: " + why);
  }
  return Status::ok();
}

nlohmann::json FoldConfig::to_json() const { return json{{"window", window}}; }

int64_t FoldConfig::window_for(uint64_t model_bytes) const {
  if (window > 0) return window;
  constexpr uint64_t kBudget = 512ull << 20;
  const uint64_t fit = kBudget / std::max<uint64_t>(model_bytes, 1);
  return static_cast<int64_t>(std::clamp<uint64_t>(fit, 8, 1024));
}

StatusOr<DebugMode> debug_mode_from_json(const nlohmann::json& j) {
  if (j.is_boolean()) return j.get<bool>() ? DebugMode::kMoveData : DebugMode::kOff;
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    std::vector<std::string> names;
    for (const auto& [name, mode] : kDebugNames) {
      if (s == name) return mode;
      names.push_back(name);
    }
    return invalid_argument("must be false, true or dispatch, got '" + s + "'" +
                            did_you_mean(s, names));
  }
  return invalid_argument(std::string("must be false, true or dispatch, got a ") + j.type_name());
}

nlohmann::json debug_mode_to_json(DebugMode m) {
  switch (m) {
    case DebugMode::kOff:
      return false;
    case DebugMode::kMoveData:
      return true;
    default:
      return to_string(m);
  }
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
              {"mode", to_string(mode)},
              {"control", control.to_json()},
              {"data_plane", data_plane.to_json()},
              {"faults", faults.to_json()},
              {"output", output.to_json()},
              {"eval", eval.to_json()},
              {"async", async.to_json()},
              {"heterogeneity", heterogeneity.to_json()},
              {"clock", to_string(clock)},
              {"virtual_sample_rate", virtual_sample_rate},
              {"fold", fold.to_json()},
              {"threads", threads},
              {"debug", debug_mode_to_json(debug)},
              {"deploy", deploy},
              {"compression", compression_to_json(compression, aggregator_fraction)},
              {"privacy",
               {{"dp", dp ? dp_options_to_json(*dp) : json(nullptr)},
                {"secure_aggregation", secure ? secure_options_to_json(*secure) : json(nullptr)}}}};
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

StatusOr<ExperimentConfig> load_run_config(const std::string& run_dir,
                                           const std::vector<std::string>& overrides) {
  const std::string path = (fs::path(run_dir) / "config.yaml").string();
  if (!fs::exists(path)) {
    return not_found("--resume: '" + run_dir +
                     "' has no config.yaml (not a run directory of `flight run`?)");
  }
  return ExperimentConfig::load(path, overrides);
}

std::vector<std::string> config_differences(const ExperimentConfig& was,
                                            const ExperimentConfig& now) {
  json a = was.to_json(), b = now.to_json();
  // Where the outputs go is the run directory itself, named by --resume.
  a["output"].erase("dir");
  b["output"].erase("dir");
  std::vector<std::string> out;
  diff_json(a, b, "", &out);
  return out;
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
