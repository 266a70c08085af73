#include "flight/engine/messages.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using transport::Ref;

// Typed fields of one message object; every error names the message and key.
class Fields {
 public:
  Fields(const json& j, const char* what) : j_(j), what_(what) {}

  Status object() const {
    if (!j_.is_object()) return invalid_argument(std::string(what_) + " is not a JSON object");
    return Status::ok();
  }
  template <typename T>
  Status required(const char* key, T* out) const {
    auto it = j_.find(key);
    if (it == j_.end()) return error(key, "is missing");
    return read(key, *it, out);
  }
  template <typename T>
  Status optional(const char* key, T* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::ok();
    return read(key, *it, out);
  }
  template <typename T>
  Status optional(const char* key, std::optional<T>* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return Status::ok();
    T v{};
    FLIGHT_RETURN_IF_ERROR(read(key, *it, &v));
    *out = std::move(v);
    return Status::ok();
  }

 private:
  Status error(const char* key, const std::string& why) const {
    return invalid_argument(std::string(what_) + ": '" + key + "' " + why);
  }
  Status read(const char* key, const json& v, int64_t* out) const {
    if (!v.is_number_integer()) return error(key, "is not an integer");
    *out = v.get<int64_t>();
    return Status::ok();
  }
  Status read(const char* key, const json& v, uint64_t* out) const {
    if (!v.is_number_integer() ||
        (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0)) {
      return error(key, "is not a non-negative integer");
    }
    *out = v.get<uint64_t>();
    return Status::ok();
  }
  Status read(const char* key, const json& v, double* out) const {
    if (!v.is_number()) return error(key, "is not a number");
    *out = v.get<double>();
    return Status::ok();
  }
  Status read(const char* key, const json& v, bool* out) const {
    if (!v.is_boolean()) return error(key, "is not a boolean");
    *out = v.get<bool>();
    return Status::ok();
  }
  Status read(const char* key, const json& v, std::string* out) const {
    if (!v.is_string()) return error(key, "is not a string");
    *out = v.get<std::string>();
    return Status::ok();
  }
  Status read(const char* key, const json& v, Ref* out) const {
    if (!v.is_object()) return error(key, "is not a Ref object");
    auto ref = Ref::from_json(v);
    if (!ref.is_ok()) return error(key, "is not a Ref: " + ref.status().message());
    *out = std::move(ref).value();
    return Status::ok();
  }
  Status read(const char* key, const json& v, PutTarget* out) const {
    auto put = PutTarget::from_json(v);
    if (!put.is_ok()) return error(key, put.status().message());
    *out = std::move(put).value();
    return Status::ok();
  }

  const json& j_;
  const char* what_;
};

}  // namespace

void JobRef::to_json(json* out) const {
  (*out)["job_id"] = id;
  if (!at.is_null()) (*out)["job_at"] = at;
  if (!job.is_null()) (*out)["job"] = job;
}

StatusOr<JobRef> JobRef::from_json(const json& args) {
  JobRef r;
  Fields f(args, "task");
  FLIGHT_RETURN_IF_ERROR(f.optional("job_id", &r.id));
  auto it = args.find("job");
  if (it != args.end() && !it->is_null()) r.job = *it;
  it = args.find("job_at");
  if (it != args.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("connector") || !it->contains("key") ||
        !it->at("key").is_string()) {
      return invalid_argument("task: 'job_at' must be {connector, key}");
    }
    r.at = *it;
  }
  if (r.id.empty() && r.job.is_null())
    return invalid_argument("missing argument 'job' (or 'job_id')");
  return r;
}

json PutTarget::to_json() const { return json{{"connector", connector}, {"scope", scope}}; }

StatusOr<PutTarget> PutTarget::from_json(const json& j) {
  if (!j.is_object() || !j.contains("connector")) {
    return invalid_argument("argument 'put' must be {connector, scope}");
  }
  PutTarget p;
  p.connector = j.at("connector");
  FLIGHT_RETURN_IF_ERROR(Fields(j, "put").optional("scope", &p.scope));
  return p;
}

json TrainArgs::to_json() const {
  json j{{"round", round},
         {"node", node},
         {"worker_index", worker_index},
         {"model", model.to_json()},
         {"put", put.to_json()}};
  job.to_json(&j);
  return j;
}

StatusOr<TrainArgs> TrainArgs::from_json(const json& j) {
  TrainArgs a;
  Fields f(j, "train args");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_ASSIGN_OR_RETURN(a.job, JobRef::from_json(j));
  FLIGHT_RETURN_IF_ERROR(f.required("round", &a.round));
  FLIGHT_RETURN_IF_ERROR(f.required("node", &a.node));
  FLIGHT_RETURN_IF_ERROR(f.required("worker_index", &a.worker_index));
  FLIGHT_RETURN_IF_ERROR(f.required("model", &a.model));
  FLIGHT_RETURN_IF_ERROR(f.required("put", &a.put));
  return a;
}

json TrainResult::to_json() const {
  return json{{"update", update.to_json()},
              {"owned", owned},
              {"n_samples", n_samples},
              {"weight", weight},
              {"loss", loss},
              {"accuracy", accuracy},
              {"train_seconds", train_seconds},
              {"bytes_fetched", bytes_fetched},
              {"bytes_put", bytes_put}};
}

StatusOr<TrainResult> TrainResult::from_json(const json& j) {
  TrainResult r;
  Fields f(j, "train result");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_RETURN_IF_ERROR(f.required("update", &r.update));
  FLIGHT_RETURN_IF_ERROR(f.required("weight", &r.weight));
  FLIGHT_RETURN_IF_ERROR(f.optional("owned", &r.owned));
  FLIGHT_RETURN_IF_ERROR(f.optional("n_samples", &r.n_samples));
  FLIGHT_RETURN_IF_ERROR(f.optional("loss", &r.loss));
  FLIGHT_RETURN_IF_ERROR(f.optional("accuracy", &r.accuracy));
  FLIGHT_RETURN_IF_ERROR(f.optional("train_seconds", &r.train_seconds));
  FLIGHT_RETURN_IF_ERROR(f.optional("bytes_fetched", &r.bytes_fetched));
  FLIGHT_RETURN_IF_ERROR(f.optional("bytes_put", &r.bytes_put));
  return r;
}

json ChildUpdate::to_json() const {
  json j{{"node", node},
         {"update", update.to_json()},
         {"owned", owned},
         {"weight", weight},
         {"count", count}};
  if (base) {
    j["base"] = base->to_json();
    j["base_owned"] = base_owned;
  }
  return j;
}

StatusOr<ChildUpdate> ChildUpdate::from_json(const json& j) {
  ChildUpdate c;
  Fields f(j, "child update");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_RETURN_IF_ERROR(f.optional("node", &c.node));
  FLIGHT_RETURN_IF_ERROR(f.required("update", &c.update));
  FLIGHT_RETURN_IF_ERROR(f.required("weight", &c.weight));
  FLIGHT_RETURN_IF_ERROR(f.optional("owned", &c.owned));
  FLIGHT_RETURN_IF_ERROR(f.optional("count", &c.count));
  FLIGHT_RETURN_IF_ERROR(f.optional("base", &c.base));
  FLIGHT_RETURN_IF_ERROR(f.optional("base_owned", &c.base_owned));
  return c;
}

json AggregateArgs::to_json() const {
  json kids = json::array();
  for (const auto& c : children) kids.push_back(c.to_json());
  json j{{"round", round}, {"node", node}, {"children", std::move(kids)}, {"put", put.to_json()}};
  job.to_json(&j);
  return j;
}

StatusOr<AggregateArgs> AggregateArgs::from_json(const json& j) {
  AggregateArgs a;
  Fields f(j, "aggregate args");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_ASSIGN_OR_RETURN(a.job, JobRef::from_json(j));
  FLIGHT_RETURN_IF_ERROR(f.optional("round", &a.round));
  FLIGHT_RETURN_IF_ERROR(f.required("node", &a.node));
  auto kids = j.find("children");
  if (kids == j.end()) return invalid_argument("missing argument 'children'");
  if (!kids->is_array() || kids->empty()) {
    return invalid_argument("aggregator " + a.node + ": no child updates to aggregate");
  }
  a.children.reserve(kids->size());
  for (const auto& c : *kids) {
    auto child = ChildUpdate::from_json(c);
    if (!child.is_ok())
      return child.status().with_context("aggregator " + a.node + ": malformed child");
    a.children.push_back(std::move(child).value());
  }
  FLIGHT_RETURN_IF_ERROR(f.required("put", &a.put));
  return a;
}

json AggregateResult::to_json() const {
  json j{{"update", update.to_json()},
         {"owned", owned},
         {"weight", weight},
         {"count", count},
         {"bytes_fetched", bytes_fetched},
         {"bytes_put", bytes_put}};
  if (base) j["base"] = base->to_json();
  return j;
}

StatusOr<AggregateResult> AggregateResult::from_json(const json& j) {
  AggregateResult r;
  Fields f(j, "aggregate result");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_RETURN_IF_ERROR(f.required("update", &r.update));
  FLIGHT_RETURN_IF_ERROR(f.required("weight", &r.weight));
  FLIGHT_RETURN_IF_ERROR(f.optional("owned", &r.owned));
  FLIGHT_RETURN_IF_ERROR(f.optional("count", &r.count));
  FLIGHT_RETURN_IF_ERROR(f.optional("base", &r.base));
  FLIGHT_RETURN_IF_ERROR(f.optional("bytes_fetched", &r.bytes_fetched));
  FLIGHT_RETURN_IF_ERROR(f.optional("bytes_put", &r.bytes_put));
  return r;
}

json EvaluateArgs::to_json() const {
  json j{{"model", model.to_json()}, {"batch_size", batch_size}, {"begin", begin}};
  if (end) j["end"] = *end;
  job.to_json(&j);
  return j;
}

StatusOr<EvaluateArgs> EvaluateArgs::from_json(const json& j) {
  EvaluateArgs a;
  Fields f(j, "evaluate args");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_ASSIGN_OR_RETURN(a.job, JobRef::from_json(j));
  FLIGHT_RETURN_IF_ERROR(f.required("model", &a.model));
  FLIGHT_RETURN_IF_ERROR(f.optional("batch_size", &a.batch_size));
  FLIGHT_RETURN_IF_ERROR(f.optional("begin", &a.begin));
  FLIGHT_RETURN_IF_ERROR(f.optional("end", &a.end));
  if (a.batch_size < 1) return invalid_argument("evaluate args: 'batch_size' must be >= 1");
  return a;
}

json EvaluateResult::to_json() const {
  return json{{"loss", loss}, {"accuracy", accuracy}, {"n", n}};
}

StatusOr<EvaluateResult> EvaluateResult::from_json(const json& j) {
  EvaluateResult r;
  Fields f(j, "evaluate result");
  FLIGHT_RETURN_IF_ERROR(f.object());
  FLIGHT_RETURN_IF_ERROR(f.required("loss", &r.loss));
  FLIGHT_RETURN_IF_ERROR(f.required("accuracy", &r.accuracy));
  FLIGHT_RETURN_IF_ERROR(f.required("n", &r.n));
  return r;
}

}  // namespace flight::engine
