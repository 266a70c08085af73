#include "flight/engine/secagg_worker.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "flight/engine/job.h"
#include "flight/engine/job_cache.h"
#include "flight/params/param_ops.h"
#include "flight/privacy/prg.h"
#include "transport/update_encoding.h"

namespace flight::engine {
namespace {

// One worker's secrets for one round, between its tasks.
struct Secret {
  std::mutex mu;
  std::optional<privacy::SecAggWorker> worker;
};

class SecretTable {
 public:
  static SecretTable& instance() {
    static SecretTable* t = new SecretTable();  // leaked: tasks may run during exit
    return *t;
  }

  // The entry of (job, plan, index), created if absent. A new round of the
  // job drops what older rounds left (workers that dropped were never asked
  // to reveal).
  std::shared_ptr<Secret> open(const std::string& job, uint64_t plan, int64_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& rounds = table_[job];
    for (auto it = rounds.begin(); it != rounds.end();) {
      it = it->first == plan ? std::next(it) : rounds.erase(it);
    }
    auto& slot = rounds[plan][index];
    if (!slot) slot = std::make_shared<Secret>();
    return slot;
  }
  std::shared_ptr<Secret> find(const std::string& job, uint64_t plan, int64_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    auto j = table_.find(job);
    if (j == table_.end()) return nullptr;
    auto p = j->second.find(plan);
    if (p == j->second.end()) return nullptr;
    auto i = p->second.find(index);
    return i == p->second.end() ? nullptr : i->second;
  }
  void erase(const std::string& job, uint64_t plan, int64_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    auto j = table_.find(job);
    if (j == table_.end()) return;
    auto p = j->second.find(plan);
    if (p == j->second.end()) return;
    p->second.erase(index);
    if (p->second.empty()) j->second.erase(p);
    if (j->second.empty()) table_.erase(j);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [job, rounds] : table_) {
      for (const auto& [plan, workers] : rounds) n += workers.size();
    }
    return n;
  }

 private:
  std::mutex mu_;
  std::unordered_map<
      std::string,
      std::unordered_map<uint64_t, std::unordered_map<int64_t, std::shared_ptr<Secret>>>>
      table_;
};

std::string job_key(const JobRef& job) { return job.id.empty() ? job_id(job.job) : job.id; }

// The worker's secrets of this round, which its advertise task made here.
StatusOr<std::shared_ptr<Secret>> find_secret(const JobRef& job, const SecAggPlan& plan,
                                              int64_t index, const std::string& node,
                                              const char* task) {
  auto s = SecretTable::instance().find(job_key(job), plan.id, index);
  if (!s || !s->worker) {
    return failed_precondition(
        "worker " + node + ": " + task + ": no secure-aggregation secret for round plan " +
        std::to_string(plan.id) +
        " in this process (its secagg_advertise ran in another process serving the same "
        "endpoint, or this process restarted)");
  }
  return s;
}

class MaskedSum final : public aggregators::Aggregation {
 public:
  Status accumulate(const ParamSet& update, double weight) override {
    if (update.size() != 1 || update[0].name != kMaskedTensor ||
        update[0].tensor.scalar_type() != at::kInt || !update[0].tensor.is_contiguous()) {
      return invalid_argument(
          "secure aggregation: an update is not a masked vector (one contiguous int32 tensor '" +
          std::string(kMaskedTensor) + "')");
    }
    const at::Tensor& x = update[0].tensor;
    if (count_ == 0) {
      acc_ = x.clone();
    } else if (x.numel() != acc_.numel()) {
      return invalid_argument("secure aggregation: masked vectors of " +
                              std::to_string(acc_.numel()) + " and " + std::to_string(x.numel()) +
                              " words");
    } else {
      privacy::add_mod32(reinterpret_cast<uint32_t*>(acc_.data_ptr<int32_t>()),
                         reinterpret_cast<const uint32_t*>(x.data_ptr<int32_t>()),
                         static_cast<size_t>(x.numel()));
    }
    weight_ += weight;
    ++count_;
    return Status::ok();
  }
  size_t count() const override { return count_; }
  StatusOr<aggregators::Weighted> finalize() override {
    if (count_ == 0 || finalized_) {
      return failed_precondition("secure aggregation: nothing to sum (or summed twice)");
    }
    finalized_ = true;
    aggregators::Weighted out;
    out.params.add(kMaskedTensor, std::move(acc_));
    out.weight = weight_;
    return out;
  }

 private:
  at::Tensor acc_;
  double weight_ = 0;
  size_t count_ = 0;
  bool finalized_ = false;
};

// `trained` as a plain run with this compression would have sent it:
// quantised and dequantised (float32 tensors; others untouched).
ParamSet quantised(const ParamSet& trained, const transport::EncodeOptions& o) {
  ParamSet out = trained.clone();
  std::vector<uint8_t> payload;
  for (size_t t = 0; t < out.size(); ++t) {
    at::Tensor& x = out[t].tensor;
    if (x.scalar_type() != at::kFloat) continue;
    const auto n = static_cast<uint64_t>(x.numel());
    float* xp = x.data_ptr<float>();
    const transport::Encoding e = transport::tensor_encoding(o, xp, n);
    payload.resize(transport::payload_size(o, xp, n));
    transport::encode_payload(o, xp, n, t, payload.data());
    transport::decode_payload(e, payload.data(), n, xp);
  }
  return out;
}

}  // namespace

privacy::SecAggRound to_round(const SecAggPlan& plan) {
  privacy::SecAggRound r;
  r.round = plan.id;
  r.num_workers = static_cast<int>(plan.num_workers);
  r.neighbours = static_cast<int>(plan.neighbours);
  r.threshold = static_cast<int>(plan.threshold);
  r.fractional_bits = static_cast<int>(plan.fractional_bits);
  r.graph_seed = plan.graph_seed;
  return r;
}

SecAggPlan to_plan(const privacy::SecAggRound& round) {
  SecAggPlan p;
  p.id = round.round;
  p.num_workers = round.num_workers;
  p.neighbours = round.neighbours;
  p.threshold = round.threshold;
  p.fractional_bits = round.fractional_bits;
  p.graph_seed = round.graph_seed;
  return p;
}

StatusOr<size_t> masked_words(const ParamSet& model) {
  size_t n = 0;
  for (const auto& e : model) {
    if (!is_floating(e.tensor)) continue;
    if (e.tensor.scalar_type() != at::kFloat) {
      return invalid_argument("secure aggregation encodes float32 tensors; '" + e.name + "' is " +
                              std::string(at::toString(e.tensor.scalar_type())));
    }
    n += static_cast<size_t>(e.tensor.numel());
  }
  return n;
}

std::unique_ptr<aggregators::Aggregation> masked_sum() { return std::make_unique<MaskedSum>(); }

StatusOr<ParamSet> mask_update(const TrainArgs& args, const JobRuntime& rt, const ParamSet& global,
                               const ParamSet& trained, double weight,
                               std::optional<bool> unclipped) {
  const SecAggTrain& sec = *args.secure;
  const std::string who = "worker " + args.node;
  FLIGHT_RETURN_IF_ERROR(trained.check_compatible(global).with_context(who));
  FLIGHT_ASSIGN_OR_RETURN(const size_t n, masked_words(global));
  ParamSet compressed;
  const ParamSet* model = &trained;
  if (rt.job.compression.encoding != transport::Encoding::kRaw) {
    transport::EncodeOptions o = rt.job.compression;
    o.seed = task_seed(rt.job.seed, args.worker_index, args.round);
    compressed = quantised(trained, o);
    model = &compressed;
  }
  at::Tensor out = at::empty({static_cast<int64_t>(n + kMaskedExtraWords)}, at::kInt);
  auto* words = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  const privacy::FixedPoint fp(static_cast<int>(sec.plan.fractional_bits));
  const double w = weight * sec.weight_scale;
  // delta = model - global, a chunk at a time (no model-sized float copy).
  constexpr size_t kChunk = 4096;
  float delta[kChunk];
  size_t off = 0, saturated = 0;
  for (size_t t = 0; t < global.size(); ++t) {
    const at::Tensor& g = global[t].tensor;
    if (!is_floating(g)) continue;  // integer buffers keep the global's value
    const at::Tensor m = (*model)[t].tensor.contiguous();
    const at::Tensor gc = g.contiguous();
    const float* mp = m.data_ptr<float>();
    const float* gp = gc.data_ptr<float>();
    const auto len = static_cast<size_t>(g.numel());
    for (size_t i = 0; i < len; i += kChunk) {
      const size_t k = std::min(kChunk, len - i);
      for (size_t j = 0; j < k; ++j) delta[j] = mp[i + j] - gp[i + j];
      saturated += fp.encode(delta, k, w, words + off + i);
    }
    off += len;
  }
  if (saturated > 0) {
    return out_of_range(who + ": " + std::to_string(saturated) +
                        " coordinates of its weighted update delta are outside the fixed-point "
                        "range +-2^" +
                        std::to_string(31 - sec.plan.fractional_bits) +
                        " (lower privacy.secure_aggregation.fractional_bits)");
  }
  words[n] = fp.encode_scalar(w);
  words[n + 1] = unclipped.value_or(false) ? 1u : 0u;
  FLIGHT_ASSIGN_OR_RETURN(auto secret,
                          find_secret(args.job, sec.plan, sec.index, args.node, "train"));
  std::lock_guard<std::mutex> lock(secret->mu);
  std::vector<privacy::SealedShare> inbox;
  inbox.reserve(sec.inbox.size());
  for (const auto& s : sec.inbox) {
    inbox.push_back({static_cast<int>(s.from), static_cast<int>(s.to), s.box});
  }
  FLIGHT_RETURN_IF_ERROR(secret->worker->receive_shares(inbox).with_context(who));
  FLIGHT_RETURN_IF_ERROR(secret->worker->mask(words, n + kMaskedExtraWords).with_context(who));
  ParamSet masked;
  masked.add(kMaskedTensor, std::move(out));
  return masked;
}

StatusOr<SecAggAdvertiseResult> secagg_advertise(const SecAggAdvertiseArgs& args,
                                                 const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args.job));
  if (args.worker_index < 0 || args.worker_index >= static_cast<int64_t>(rt->partitions.size())) {
    return invalid_argument("worker " + args.node + ": worker_index " +
                            std::to_string(args.worker_index) + " outside [0, " +
                            std::to_string(rt->partitions.size()) + ")");
  }
  SecAggAdvertiseResult out;
  const auto samples =
      static_cast<int64_t>(rt->partitions[static_cast<size_t>(args.worker_index)].size());
  out.weight = args.uniform_weight ? 1.0 : rt->strategy->worker_weight(samples);
  auto secret = SecretTable::instance().open(job_key(args.job), args.plan.id, args.index);
  std::lock_guard<std::mutex> lock(secret->mu);
  if (!secret->worker) {
    // A redelivered advertise keeps the first key: the coordinator took the
    // first answer. The secret comes from the OS, never from the run seed.
    FLIGHT_ASSIGN_OR_RETURN(
        auto w, privacy::SecAggWorker::create(to_round(args.plan), static_cast<int>(args.index),
                                              privacy::random_seed()));
    secret->worker.emplace(std::move(w));
  }
  out.public_key = secret->worker->public_key();
  return out;
}

StatusOr<SecAggShareResult> secagg_share(const SecAggShareArgs& args,
                                         const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(auto secret,
                          find_secret(args.job, args.plan, args.index, args.node, "share"));
  std::vector<std::optional<privacy::PublicKey>> keys(static_cast<size_t>(args.plan.num_workers));
  for (const auto& [i, k] : args.keys) keys[static_cast<size_t>(i)] = k;
  std::lock_guard<std::mutex> lock(secret->mu);
  FLIGHT_ASSIGN_OR_RETURN(auto sealed, secret->worker->share_secrets(keys));
  SecAggShareResult out;
  for (auto& s : sealed) out.shares.push_back({s.from, s.to, std::move(s.box)});
  return out;
}

StatusOr<SecAggRevealResult> secagg_reveal(const SecAggRevealArgs& args,
                                           const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(auto secret,
                          find_secret(args.job, args.plan, args.index, args.node, "reveal"));
  std::vector<bool> survived(static_cast<size_t>(args.plan.num_workers), false);
  for (int64_t s : args.survivors) survived[static_cast<size_t>(s)] = true;
  SecAggRevealResult out;
  {
    std::lock_guard<std::mutex> lock(secret->mu);
    FLIGHT_ASSIGN_OR_RETURN(auto reveal, secret->worker->reveal(survived));
    for (const auto& r : reveal.shares) {
      SecAggRevealed v;
      v.owner = r.owner;
      v.self_mask = r.self_mask;
      v.share.resize(privacy::kShareBytes);
      r.share.serialize(v.share.data());
      out.shares.push_back(std::move(v));
    }
  }
  SecretTable::instance().erase(job_key(args.job), args.plan.id, args.index);
  return out;
}

size_t secagg_secrets_held() { return SecretTable::instance().size(); }

}  // namespace flight::engine
