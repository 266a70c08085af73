#include "flight/engine/messages.h"

#include <algorithm>
#include <cmath>

#include "flight/base/options.h"
#include "flight/base/strings.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using transport::Ref;

// A Ref-valued field (through its JSON form).
void ref_field(OptionReader& r, const char* key, Ref* out, bool required = true) {
  json j;
  if (required)
    r.required(key, &j);
  else
    r.optional(key, &j);
  if (j.is_null()) return;
  auto ref = Ref::from_json(j);
  if (ref.is_ok())
    *out = std::move(ref).value();
  else
    r.fail(key, "not a Ref: " + ref.status().message());
}

void ref_field(OptionReader& r, const char* key, std::optional<Ref>* out) {
  if (!r.has(key)) return r.known({key}), void();
  Ref ref;
  ref_field(r, key, &ref, false);
  *out = std::move(ref);
}

// A required object field read by T::from_json (PutTarget, SecAggPlan).
template <typename T>
void object_field(OptionReader& r, const char* key, T* out) {
  json j;
  r.required(key, &j);
  if (j.is_null()) return;
  auto v = T::from_json(j);
  if (v.is_ok())
    *out = std::move(v).value();
  else
    r.fail(key, v.status().message());
}

// A hex-encoded binary field of exactly `size` bytes (0: any size).
void hex_field(OptionReader& r, const char* key, std::vector<uint8_t>* out, size_t size = 0) {
  std::string hex;
  r.required(key, &hex);
  if (!r.has(key)) return;
  if (!hex_decode(hex, out)) {
    r.fail(key, "must be a hex string");
  } else if (size != 0 && out->size() != size) {
    r.fail(key, "must be " + std::to_string(size) + " bytes, got " + std::to_string(out->size()));
  }
}

void key_field(OptionReader& r, const char* key, std::array<uint8_t, 32>* out) {
  std::vector<uint8_t> bytes;
  hex_field(r, key, &bytes, out->size());
  if (bytes.size() == out->size()) std::copy(bytes.begin(), bytes.end(), out->begin());
}

// A list field of objects read by T::from_json(element, "path[i]").
template <typename T>
void list_field(OptionReader& r, const char* key, const std::string& path, std::vector<T>* out) {
  json j;
  r.required(key, &j);
  if (j.is_null()) return;
  if (!j.is_array()) {
    r.fail(key, "must be a list");
    return;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    auto v = T::from_json(j[i], path + "." + key + "[" + std::to_string(i) + "]");
    if (!v.is_ok()) {
      r.fail(key, v.status().message());
      return;
    }
    out->push_back(std::move(v).value());
  }
}

// `index` must name one of the plan's workers.
void check_index(OptionReader& r, const SecAggPlan& plan, int64_t index) {
  if (index < 0 || index >= plan.num_workers) {
    r.fail("index", "must be in [0, " + std::to_string(plan.num_workers) + "), got " +
                        std::to_string(index));
  }
}

}  // namespace

void JobRef::to_json(json* out) const {
  (*out)["job_id"] = id;
  if (!at.is_null()) (*out)["job_at"] = at;
  if (!job.is_null()) (*out)["job"] = job;
}

JobRef JobRef::from_json(OptionReader& r) {
  JobRef ref;
  r.optional("job_id", &ref.id).optional("job", &ref.job).optional("job_at", &ref.at);
  if (!ref.at.is_null() && (!ref.at.is_object() || !ref.at.contains("connector") ||
                            !ref.at.contains("key") || !ref.at.at("key").is_string())) {
    r.fail("job_at", "must be {connector, key}");
  }
  if (ref.id.empty() && ref.job.is_null()) r.fail("missing argument 'job' (or 'job_id')");
  return ref;
}

json PutTarget::to_json() const { return json{{"connector", *connector}, {"scope", scope}}; }

StatusOr<PutTarget> PutTarget::from_json(const json& j) {
  PutTarget p;
  json connector;
  OptionReader r(j, "put");
  r.required("connector", &connector).optional("scope", &p.scope);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  p.connector = std::move(connector);
  return p;
}

json DpTask::to_json() const {
  return json{{"clip_norm", clip_norm}, {"noise_stddev", noise_stddev}, {"seeded", seeded}};
}

StatusOr<DpTask> DpTask::from_json(const json& j) {
  DpTask d;
  OptionReader r(j, "train args.dp");
  r.required("clip_norm", &d.clip_norm)
      .at_least("noise_stddev", &d.noise_stddev, 0.0)
      .optional("seeded", &d.seeded);
  if (!(d.clip_norm > 0)) r.fail("clip_norm", "must be > 0");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return d;
}

json SecAggPlan::to_json() const {
  return json{{"id", id},
              {"num_workers", num_workers},
              {"neighbours", neighbours},
              {"threshold", threshold},
              {"fractional_bits", fractional_bits},
              {"graph_seed", graph_seed}};
}

StatusOr<SecAggPlan> SecAggPlan::from_json(const json& j, const std::string& path) {
  SecAggPlan p;
  OptionReader r(j, path);
  r.required("id", &p.id)
      .at_least("num_workers", &p.num_workers, int64_t{2}, true)
      .at_least("neighbours", &p.neighbours, int64_t{1}, true)
      .at_least("threshold", &p.threshold, int64_t{1}, true)
      .in_range("fractional_bits", &p.fractional_bits, int64_t{0}, int64_t{30}, true)
      .required("graph_seed", &p.graph_seed);
  if (p.neighbours >= p.num_workers) r.fail("neighbours", "must be < num_workers");
  if (p.threshold > p.neighbours) r.fail("threshold", "must be <= neighbours");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return p;
}

json SecAggSealed::to_json() const {
  json j{{"to", to}, {"box", hex_encode(box.data(), box.size())}};
  if (from >= 0) j["from"] = from;
  return j;
}

StatusOr<SecAggSealed> SecAggSealed::from_json(const json& j, const std::string& path) {
  SecAggSealed s;
  OptionReader r(j, path);
  r.at_least("from", &s.from, int64_t{0}).at_least("to", &s.to, int64_t{0}, true);
  hex_field(r, "box", &s.box);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return s;
}

json SecAggTrain::to_json() const {
  json inbox_json = json::array();
  for (const auto& s : inbox) inbox_json.push_back(s.to_json());
  return json{{"plan", plan.to_json()},
              {"index", index},
              {"weight_scale", weight_scale},
              {"inbox", std::move(inbox_json)}};
}

StatusOr<SecAggTrain> SecAggTrain::from_json(const json& j) {
  SecAggTrain t;
  OptionReader r(j, "train args.secure");
  object_field(r, "plan", &t.plan);
  r.required("index", &t.index).required("weight_scale", &t.weight_scale);
  if (!(t.weight_scale > 0)) r.fail("weight_scale", "must be > 0");
  check_index(r, t.plan, t.index);
  list_field(r, "inbox", "train args.secure", &t.inbox);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return t;
}

json TrainArgs::to_json() const {
  json j{{"round", round},
         {"node", node},
         {"worker_index", worker_index},
         {"model", model.to_json()},
         {"put", put.to_json()}};
  if (dp) j["dp"] = dp->to_json();
  if (ef_round) j["ef_round"] = *ef_round;
  if (secure) j["secure"] = secure->to_json();
  job.to_json(&j);
  return j;
}

StatusOr<TrainArgs> TrainArgs::from_json(const json& j) {
  TrainArgs a;
  OptionReader r(j, "train args");
  a.job = JobRef::from_json(r);
  r.required("round", &a.round).required("node", &a.node).required("worker_index", &a.worker_index);
  ref_field(r, "model", &a.model);
  object_field(r, "put", &a.put);
  json dp;
  r.optional("dp", &dp);
  if (!dp.is_null()) {
    auto task = DpTask::from_json(dp);
    if (task.is_ok())
      a.dp = *task;
    else
      r.fail("dp", task.status().message());
  }
  if (r.has("ef_round")) {
    int64_t delivered = 0;
    r.at_least("ef_round", &delivered, int64_t{0});
    a.ef_round = delivered;
  }
  json secure;
  r.optional("secure", &secure);
  if (!secure.is_null()) {
    auto part = SecAggTrain::from_json(secure);
    if (part.is_ok())
      a.secure = std::move(part).value();
    else
      r.fail("secure", part.status().message());
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json TrainResult::to_json() const {
  json j{{"update", update.to_json()},
         {"owned", owned},
         {"n_samples", n_samples},
         {"weight", weight},
         {"loss", loss},
         {"accuracy", accuracy},
         {"train_seconds", train_seconds},
         {"bytes_fetched", bytes_fetched},
         {"bytes_put", bytes_put}};
  if (dp_unclipped) j["dp_unclipped"] = *dp_unclipped;
  return j;
}

StatusOr<TrainResult> TrainResult::from_json(const json& j) {
  TrainResult t;
  OptionReader r(j, "train result");
  ref_field(r, "update", &t.update);
  r.required("weight", &t.weight)
      .optional("owned", &t.owned)
      .optional("n_samples", &t.n_samples)
      .optional("loss", &t.loss)
      .optional("accuracy", &t.accuracy)
      .optional("train_seconds", &t.train_seconds)
      .optional("bytes_fetched", &t.bytes_fetched)
      .optional("bytes_put", &t.bytes_put);
  if (r.has("dp_unclipped")) {
    bool unclipped = false;
    r.optional("dp_unclipped", &unclipped);
    t.dp_unclipped = unclipped;
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return t;
}

json ChildUpdate::to_json() const {
  json j{{"node", node},
         {"update", update.to_json()},
         {"owned", owned},
         {"weight", weight},
         {"count", count}};
  if (index >= 0) j["index"] = index;
  if (base) {
    j["base"] = base->to_json();
    j["base_owned"] = base_owned;
  }
  return j;
}

StatusOr<ChildUpdate> ChildUpdate::from_json(const json& j, const std::string& path) {
  ChildUpdate c;
  OptionReader r(j, path);
  r.optional("node", &c.node);
  ref_field(r, "update", &c.update);
  r.required("weight", &c.weight)
      .optional("owned", &c.owned)
      .optional("count", &c.count)
      .at_least("index", &c.index, int64_t{0});
  ref_field(r, "base", &c.base);
  r.optional("base_owned", &c.base_owned);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return c;
}

json FoldStream::to_json() const {
  return json{{"session", session}, {"total", total}, {"window", window}, {"skipped", skipped}};
}

StatusOr<FoldStream> FoldStream::from_json(const json& j, const std::string& path) {
  FoldStream s;
  OptionReader r(j, path);
  r.required("session", &s.session)
      .at_least("total", &s.total, int64_t{1}, true)
      .at_least("window", &s.window, int64_t{1})
      .optional("skipped", &s.skipped);
  for (int64_t v : s.skipped) {
    if (v < 0 || v >= s.total) {
      r.fail("skipped", "holds " + std::to_string(v) + ", not a position in [0, " +
                            std::to_string(s.total) + ")");
      break;
    }
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return s;
}

json AggregateArgs::to_json() const {
  json kids = json::array();
  for (const auto& c : children) kids.push_back(c.to_json());
  json j{{"round", round}, {"node", node}, {"children", std::move(kids)}, {"put", put.to_json()}};
  if (stream) j["stream"] = stream->to_json();
  if (ef_round) j["ef_round"] = *ef_round;
  if (masked) j["masked"] = true;
  job.to_json(&j);
  return j;
}

StatusOr<AggregateArgs> AggregateArgs::from_json(const json& j) {
  AggregateArgs a;
  OptionReader r(j, "aggregate args");
  a.job = JobRef::from_json(r);
  json kids, stream;
  r.optional("round", &a.round)
      .required("node", &a.node)
      .required("children", &kids)
      .optional("stream", &stream)
      .optional("masked", &a.masked);
  object_field(r, "put", &a.put);
  if (r.has("ef_round")) {
    int64_t delivered = 0;
    r.at_least("ef_round", &delivered, int64_t{0});
    a.ef_round = delivered;
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (!stream.is_null()) {
    FLIGHT_ASSIGN_OR_RETURN(a.stream, FoldStream::from_json(stream, "aggregate args.stream"));
  }
  if (!kids.is_array() || (kids.empty() && !a.stream)) {
    return invalid_argument("aggregator " + a.node + ": no child updates to aggregate");
  }
  a.children.reserve(kids.size());
  for (size_t i = 0; i < kids.size(); ++i) {
    FLIGHT_ASSIGN_OR_RETURN(
        auto child,
        ChildUpdate::from_json(kids[i], "aggregate args.children[" + std::to_string(i) + "]"));
    if (a.stream && (child.index < 0 || child.index >= a.stream->total)) {
      return invalid_argument("aggregator " + a.node + ": child " + child.node +
                              " has no 'index' in [0, " + std::to_string(a.stream->total) + ")");
    }
    a.children.push_back(std::move(child));
  }
  return a;
}

json AggregateResult::to_json() const {
  json j{{"bytes_fetched", bytes_fetched}, {"bytes_put", bytes_put}};
  if (!done) {
    j["done"] = false;
    j["folded"] = folded;
    return j;
  }
  j["update"] = update.to_json();
  j["owned"] = owned;
  j["weight"] = weight;
  j["count"] = count;
  if (folded > 0) j["folded"] = folded;
  if (base) j["base"] = base->to_json();
  return j;
}

StatusOr<AggregateResult> AggregateResult::from_json(const json& j) {
  AggregateResult a;
  OptionReader r(j, "aggregate result");
  r.optional("done", &a.done)
      .optional("folded", &a.folded)
      .optional("bytes_fetched", &a.bytes_fetched)
      .optional("bytes_put", &a.bytes_put);
  if (!a.done) {
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return a;
  }
  ref_field(r, "update", &a.update);
  r.required("weight", &a.weight).optional("owned", &a.owned).optional("count", &a.count);
  ref_field(r, "base", &a.base);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json EvaluateArgs::to_json() const {
  json j{{"model", model.to_json()}, {"batch_size", batch_size}, {"begin", begin}};
  if (end) j["end"] = *end;
  job.to_json(&j);
  return j;
}

StatusOr<EvaluateArgs> EvaluateArgs::from_json(const json& j) {
  EvaluateArgs a;
  OptionReader r(j, "evaluate args");
  a.job = JobRef::from_json(r);
  ref_field(r, "model", &a.model);
  r.at_least("batch_size", &a.batch_size, int64_t{1}).optional("begin", &a.begin);
  if (r.has("end")) {
    int64_t end = 0;
    r.optional("end", &end);
    a.end = end;
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json EvaluateResult::to_json() const {
  return json{{"loss", loss}, {"accuracy", accuracy}, {"n", n}};
}

StatusOr<EvaluateResult> EvaluateResult::from_json(const json& j) {
  EvaluateResult e;
  OptionReader r(j, "evaluate result");
  r.required("loss", &e.loss).required("accuracy", &e.accuracy).required("n", &e.n);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return e;
}

json SecAggAdvertiseArgs::to_json() const {
  json j{{"node", node},
         {"worker_index", worker_index},
         {"plan", plan.to_json()},
         {"index", index},
         {"uniform_weight", uniform_weight}};
  job.to_json(&j);
  return j;
}

StatusOr<SecAggAdvertiseArgs> SecAggAdvertiseArgs::from_json(const json& j) {
  SecAggAdvertiseArgs a;
  OptionReader r(j, "secagg_advertise args");
  a.job = JobRef::from_json(r);
  r.required("node", &a.node)
      .required("worker_index", &a.worker_index)
      .required("index", &a.index)
      .optional("uniform_weight", &a.uniform_weight);
  object_field(r, "plan", &a.plan);
  check_index(r, a.plan, a.index);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json SecAggAdvertiseResult::to_json() const {
  return json{{"public_key", hex_encode(public_key.data(), public_key.size())}, {"weight", weight}};
}

StatusOr<SecAggAdvertiseResult> SecAggAdvertiseResult::from_json(const json& j) {
  SecAggAdvertiseResult a;
  OptionReader r(j, "secagg_advertise result");
  key_field(r, "public_key", &a.public_key);
  r.required("weight", &a.weight);
  if (!(a.weight >= 0) || !std::isfinite(a.weight)) r.fail("weight", "must be finite and >= 0");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json SecAggShareArgs::to_json() const {
  json keys_json = json::array();
  for (const auto& [i, k] : keys)
    keys_json.push_back({{"index", i}, {"key", hex_encode(k.data(), k.size())}});
  json j{{"node", node}, {"plan", plan.to_json()}, {"index", index}, {"keys", keys_json}};
  job.to_json(&j);
  return j;
}

StatusOr<SecAggShareArgs> SecAggShareArgs::from_json(const json& j) {
  SecAggShareArgs a;
  OptionReader r(j, "secagg_share args");
  a.job = JobRef::from_json(r);
  json keys;
  r.required("node", &a.node).required("index", &a.index).required("keys", &keys);
  object_field(r, "plan", &a.plan);
  check_index(r, a.plan, a.index);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (!keys.is_array()) return invalid_argument("secagg_share args.keys: must be a list");
  for (size_t i = 0; i < keys.size(); ++i) {
    OptionReader k(keys[i], "secagg_share args.keys[" + std::to_string(i) + "]");
    int64_t index = -1;
    std::array<uint8_t, 32> key{};
    k.required("index", &index);
    key_field(k, "key", &key);
    check_index(k, a.plan, index);
    FLIGHT_RETURN_IF_ERROR(k.finish());
    a.keys.emplace_back(index, key);
  }
  return a;
}

json SecAggShareResult::to_json() const {
  json out = json::array();
  for (const auto& s : shares) out.push_back(s.to_json());
  return json{{"shares", std::move(out)}};
}

StatusOr<SecAggShareResult> SecAggShareResult::from_json(const json& j) {
  SecAggShareResult a;
  OptionReader r(j, "secagg_share result");
  list_field(r, "shares", "secagg_share result", &a.shares);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json SecAggRevealArgs::to_json() const {
  json j{{"node", node}, {"plan", plan.to_json()}, {"index", index}, {"survivors", survivors}};
  job.to_json(&j);
  return j;
}

StatusOr<SecAggRevealArgs> SecAggRevealArgs::from_json(const json& j) {
  SecAggRevealArgs a;
  OptionReader r(j, "secagg_reveal args");
  a.job = JobRef::from_json(r);
  r.required("node", &a.node).required("index", &a.index).required("survivors", &a.survivors);
  object_field(r, "plan", &a.plan);
  check_index(r, a.plan, a.index);
  for (int64_t s : a.survivors) {
    if (s < 0 || s >= a.plan.num_workers) {
      r.fail("survivors", "holds " + std::to_string(s) + ", not a worker of the round");
      break;
    }
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return a;
}

json SecAggRevealResult::to_json() const {
  json out = json::array();
  for (const auto& s : shares) {
    out.push_back({{"owner", s.owner},
                   {"self_mask", s.self_mask},
                   {"share", hex_encode(s.share.data(), s.share.size())}});
  }
  return json{{"shares", std::move(out)}};
}

StatusOr<SecAggRevealResult> SecAggRevealResult::from_json(const json& j) {
  SecAggRevealResult a;
  OptionReader r(j, "secagg_reveal result");
  json shares;
  r.required("shares", &shares);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (!shares.is_array()) return invalid_argument("secagg_reveal result.shares: must be a list");
  for (size_t i = 0; i < shares.size(); ++i) {
    OptionReader s(shares[i], "secagg_reveal result.shares[" + std::to_string(i) + "]");
    SecAggRevealed v;
    s.at_least("owner", &v.owner, int64_t{0}, true).required("self_mask", &v.self_mask);
    hex_field(s, "share", &v.share);
    FLIGHT_RETURN_IF_ERROR(s.finish());
    a.shares.push_back(std::move(v));
  }
  return a;
}

}  // namespace flight::engine
