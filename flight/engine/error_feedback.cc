#include "flight/engine/error_feedback.h"

#include <mutex>
#include <utility>
#include <vector>

#include "flight/base/logging.h"
#include "flight/params/param_ops.h"
#include "transport/codec.h"

namespace flight::engine {
namespace {

using nlohmann::json;

// One worker's error-feedback state in this process.
struct Entry {
  int64_t round = 0;         // round of the worker's last send from this process
  ParamSet after;            // residual after that send
  int64_t before_round = 0;  // the delivered round that send continued from
  ParamSet before;           // residual before it (empty: zero)
};

class Table {
 public:
  static Table& instance() {
    static Table* t = new Table();  // leaked: tasks may run during exit
    return *t;
  }
  std::mutex mu;
  std::map<std::pair<std::string, int64_t>, Entry> entries;
};

// The residual to continue from after delivered round `delivered`, and
// whether the table had it (false: start from zero).
std::pair<ParamSet, bool> lookup_locked(const Table& t, const std::string& job_key, int64_t worker,
                                        int64_t delivered) {
  auto it = t.entries.find({job_key, worker});
  if (it != t.entries.end()) {
    const Entry& e = it->second;
    if (e.round == delivered) return {e.after, true};
    if (e.before_round == delivered) return {e.before, true};
  }
  return {ParamSet(), delivered == 0};
}

}  // namespace

bool sends_deltas(const Job& job) {
  return job.compression.encoding == transport::Encoding::kTopK && job.debug == DebugMode::kOff;
}

transport::EncodeOptions update_encoding(const Job& job) {
  transport::EncodeOptions o = job.compression;
  if (sends_deltas(job)) o.encoding = transport::Encoding::kSparseVarint;
  return o;
}

namespace {

// topk(update + r) for `key`'s residual r after delivered round `delivered`;
// the table entry becomes round `round`'s.
StatusOr<ParamSet> split(const std::string& job_key, int64_t key, const std::string& who,
                         int64_t round, int64_t delivered, const transport::EncodeOptions& topk,
                         const ParamSet& update) {
  Table& t = Table::instance();
  std::pair<ParamSet, bool> from;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    from = lookup_locked(t, job_key, key, delivered);
  }
  if (!from.second) {
    spdlog::warn(
        "{}: no top-k residual for its update of round {} in this process (it last ran "
        "elsewhere, or this process restarted): continuing from a zero residual",
        who, delivered);
  }
  transport::ErrorFeedback ef(from.first);
  FLIGHT_ASSIGN_OR_RETURN(ParamSet sent, ef.sparsify(update, topk));
  {
    std::lock_guard<std::mutex> lock(t.mu);
    Entry& e = t.entries[{job_key, key}];
    e.before_round = delivered;
    e.before = std::move(from.first);
    e.round = round;
    e.after = ef.residual();
  }
  return sent;
}

}  // namespace

StatusOr<ParamSet> error_feedback_delta(const std::string& job_key, const TrainArgs& args,
                                        const transport::EncodeOptions& topk,
                                        const ParamSet& global, const ParamSet& trained) {
  FLIGHT_ASSIGN_OR_RETURN(ParamSet delta, subtract(trained, global));
  return split(job_key, args.worker_index, "worker " + args.node, args.round,
               args.ef_round.value_or(0), topk, delta);
}

Status error_feedback_partial(const std::string& job_key, const AggregateArgs& args,
                              double fraction, aggregators::Weighted* partial) {
  transport::EncodeOptions topk;
  topk.encoding = transport::Encoding::kTopK;
  topk.topk_fraction = fraction;
  ParamSet sum = partial->params;  // the fold's own accumulator
  scale(sum, partial->weight);
  FLIGHT_ASSIGN_OR_RETURN(ParamSet sent,
                          split(job_key, aggregator_key(args.node), "aggregator " + args.node,
                                args.round, args.ef_round.value_or(0), topk, sum));
  for (auto& e : sent) divide_(e.tensor, partial->weight);
  partial->params = std::move(sent);
  return Status::ok();
}

int64_t aggregator_key(const std::string& node) {
  // FNV-1a (stable across builds, unlike std::hash).
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : node) h = (h ^ c) * 0x100000001b3ull;
  return -static_cast<int64_t>(h >> 2) - 1;
}

ParamSet residual_for(const std::string& job_key, int64_t worker, int64_t delivered) {
  Table& t = Table::instance();
  std::lock_guard<std::mutex> lock(t.mu);
  return lookup_locked(t, job_key, worker, delivered).first;
}

int64_t DeltaLedger::delivered(int64_t worker) const {
  auto it = rounds_.find(worker);
  return it == rounds_.end() ? 0 : it->second;
}

json DeltaLedger::state() const {
  json d = json::array();
  for (const auto& [w, r] : rounds_) d.push_back({w, r});
  return json{{"delivered", d}};
}

ParamSet DeltaLedger::residuals(const std::string& job_key) const {
  ParamSet packed;
  for (const auto& [w, r] : rounds_) {
    for (const auto& e : residual_for(job_key, w, r)) {
      packed.add(std::to_string(w) + "/" + e.name, e.tensor);
    }
  }
  return packed;
}

Status DeltaLedger::load_state(const json& state, const std::string& job_key,
                               const ParamSet& residuals) {
  if (!state.is_object() || !state.contains("delivered") || !state["delivered"].is_array()) {
    return data_loss(
        "checkpoint: top-k ledger missing or malformed (was the run started "
        "without compression: {encoding: topk}?)");
  }
  std::map<int64_t, int64_t> rounds;
  for (const auto& d : state["delivered"]) {
    if (!d.is_array() || d.size() != 2 || !d[0].is_number_integer() || !d[1].is_number_integer()) {
      return data_loss("checkpoint: malformed top-k ledger entry " + d.dump());
    }
    rounds[d[0].get<int64_t>()] = d[1].get<int64_t>();
  }
  if (!job_key.empty()) {
    std::map<int64_t, ParamSet> unpacked;
    for (const auto& e : residuals) {
      const auto slash = e.name.find('/');
      int64_t w = 0;
      bool named = slash != std::string::npos;
      try {
        if (named) w = std::stoll(e.name.substr(0, slash));
      } catch (...) {
        named = false;
      }
      if (!named || !rounds.count(w)) {
        return data_loss("checkpoint: top-k residual '" + e.name +
                         "' names no worker of the ledger");
      }
      unpacked[w].add(e.name.substr(slash + 1), e.tensor.clone());
    }
    Table& t = Table::instance();
    std::lock_guard<std::mutex> lock(t.mu);
    for (auto it = t.entries.begin(); it != t.entries.end();) {
      it = it->first.first == job_key ? t.entries.erase(it) : std::next(it);
    }
    for (auto& [w, r] : rounds) {
      Entry& e = t.entries[{job_key, w}];
      e.round = r;
      e.after = std::move(unpacked[w]);
      e.before_round = -1;  // nothing before: the resumed run continues from `after`
    }
  }
  rounds_ = std::move(rounds);
  return Status::ok();
}

Status apply_mean_delta(const ParamSet& global, aggregators::Weighted* aggregate) {
  // The fold's result is its own fresh accumulator: safe to update in place.
  return add_scaled(aggregate->params, global, 1.0);
}

}  // namespace flight::engine
