#include "flight/engine/messages.h"

#include "flight/base/options.h"

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

void put_field(OptionReader& r, PutTarget* out) {
  json j;
  r.required("put", &j);
  if (j.is_null()) return;
  auto put = PutTarget::from_json(j);
  if (put.is_ok())
    *out = std::move(put).value();
  else
    r.fail("put", put.status().message());
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

json TrainArgs::to_json() const {
  json j{{"round", round},
         {"node", node},
         {"worker_index", worker_index},
         {"model", model.to_json()},
         {"put", put.to_json()}};
  if (dp) j["dp"] = dp->to_json();
  if (ef_round) j["ef_round"] = *ef_round;
  job.to_json(&j);
  return j;
}

StatusOr<TrainArgs> TrainArgs::from_json(const json& j) {
  TrainArgs a;
  OptionReader r(j, "train args");
  a.job = JobRef::from_json(r);
  r.required("round", &a.round).required("node", &a.node).required("worker_index", &a.worker_index);
  ref_field(r, "model", &a.model);
  put_field(r, &a.put);
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
      .optional("stream", &stream);
  put_field(r, &a.put);
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

}  // namespace flight::engine
