#include "flight/engine/secure_round.h"

#include <algorithm>
#include <cmath>

#include "flight/base/logging.h"
#include "flight/engine/job.h"
#include "flight/engine/run_context.h"
#include "flight/engine/secagg_worker.h"
#include "flight/params/param_ops.h"

namespace flight::engine {
namespace {

// Separates the masking graph's seed from the run's other derived seeds.
constexpr uint64_t kGraphSalt = 0x7365'6361'6767'7261ull;  // "secaggra"

// Runs one phase's tasks and waits for all of them (the round deadline, if
// any, bounds each).
std::vector<faas::TaskResult> run_phase(const RunContext& ctx, std::vector<faas::TaskSpec> specs) {
  const double deadline = ctx.config.faults.round_deadline_s;
  for (auto& s : specs) {
    if (deadline > 0) s.deadline_s = deadline;
  }
  auto handles = ctx.invoker->submit_batch(std::move(specs));
  std::vector<faas::TaskResult> out;
  out.reserve(handles.size());
  for (auto& h : handles) out.push_back(h.wait());
  return out;
}

template <typename Result>
StatusOr<Result> phase_result(const faas::TaskResult& r) {
  if (!r.ok()) return unavailable(r.error.empty() ? faas::task_state_name(r.state) : r.error);
  return result_of<Result>(r);
}

}  // namespace

StatusOr<std::unique_ptr<SecureRound>> SecureRound::start(
    const RunContext& ctx, int64_t round, int64_t attempt,
    const std::vector<std::string>& selected) {
  std::unique_ptr<SecureRound> s(new SecureRound(ctx));
  const int n = static_cast<int>(selected.size());
  // Every attempt of every round gets its own keys and keystreams.
  const uint64_t id = (static_cast<uint64_t>(round) << 16) | static_cast<uint64_t>(attempt);
  auto planned = privacy::SecAggRound::plan(*ctx.config.secure, n, id,
                                            task_seed(ctx.config.seed ^ kGraphSalt, -1, round));
  if (!planned.is_ok()) return planned.status().with_context("privacy.secure_aggregation");
  s->round_ = *planned;
  s->plan_ = to_plan(s->round_);
  s->coordinator_ = std::make_unique<privacy::SecAggCoordinator>(s->round_);
  s->coordinator_->set_names(selected);
  s->workers_ = selected;
  s->weights_.assign(selected.size(), 0);
  s->shared_.assign(selected.size(), false);
  for (int i = 0; i < n; ++i) s->index_[selected[i]] = i;

  // Phase 1: public keys and weights.
  std::vector<faas::TaskSpec> specs;
  for (int i = 0; i < n; ++i) {
    SecAggAdvertiseArgs a;
    a.job = ctx.job_ref();
    a.node = selected[i];
    a.worker_index = ctx.worker_index.at(selected[i]);
    a.plan = s->plan_;
    a.index = i;
    a.uniform_weight = ctx.dp != nullptr;  // DP-FedAvg weighs every worker 1
    specs.push_back(ctx.task(selected[i], "secagg_advertise", std::move(a)));
  }
  auto results = run_phase(ctx, std::move(specs));
  std::vector<bool> advertised(selected.size(), false);
  for (int i = 0; i < n; ++i) {
    auto r = phase_result<SecAggAdvertiseResult>(results[i]);
    Status st = r.status();
    if (st.is_ok()) st = s->coordinator_->add_public_key(i, r->public_key);
    if (!st.is_ok()) {
      s->left_out_.emplace_back(selected[i], "secagg_advertise failed: " + st.message());
      continue;
    }
    advertised[i] = true;
    s->weights_[i] = r->weight;
  }

  // Phase 2: sealed shares, for the neighbours that advertised.
  const privacy::MaskingGraph graph = s->round_.graph();
  const auto& keys = s->coordinator_->public_keys();
  specs.clear();
  std::vector<int> asked;
  for (int i = 0; i < n; ++i) {
    if (!advertised[i]) continue;
    SecAggShareArgs a;
    a.job = ctx.job_ref();
    a.node = selected[i];
    a.plan = s->plan_;
    a.index = i;
    for (int j : graph.neighbours(i)) {
      if (keys[j]) a.keys.emplace_back(j, *keys[j]);
    }
    specs.push_back(ctx.task(selected[i], "secagg_share", std::move(a)));
    asked.push_back(i);
  }
  results = run_phase(ctx, std::move(specs));
  for (size_t k = 0; k < asked.size(); ++k) {
    const int i = asked[k];
    auto r = phase_result<SecAggShareResult>(results[k]);
    Status st = r.status();
    if (st.is_ok()) {
      std::vector<privacy::SealedShare> out;
      for (auto& sh : r->shares) {
        out.push_back({i, static_cast<int>(sh.to), std::move(sh.box)});
      }
      st = s->coordinator_->accept_shares(i, std::move(out));
    }
    if (!st.is_ok()) {
      s->left_out_.emplace_back(selected[i], "secagg_share failed: " + st.message());
      continue;
    }
    s->shared_[i] = true;
    s->total_weight_ += s->weights_[i];
  }
  if (!(s->total_weight_ > 0)) {
    std::string why = "privacy.secure_aggregation: round " + std::to_string(round) +
                      ": no selected worker completed the key exchange";
    if (!s->left_out_.empty())
      why += " (first: worker " + s->left_out_.front().first + ": " + s->left_out_.front().second +
             ")";
    return failed_precondition(why);
  }
  return s;
}

SecAggTrain SecureRound::train_part(const std::string& worker) const {
  SecAggTrain t;
  t.plan = plan_;
  t.index = index_.at(worker);
  t.weight_scale = 1.0 / total_weight_;
  for (auto& sh : coordinator_->inbox(static_cast<int>(t.index))) {
    t.inbox.push_back({sh.from, sh.to, std::move(sh.box)});
  }
  return t;
}

std::vector<std::string> SecureRound::survivors(
    const std::unordered_set<std::string>& delivered) const {
  const std::string& root = ctx_.topology->root().id;
  std::vector<std::string> out;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!shared_[i]) continue;
    bool in = true;
    for (const std::string* node = &workers_[i]; in && *node != root;
         node = &*ctx_.topology->node(*node).parent) {
      in = delivered.count(*node) != 0;
    }
    if (in) out.push_back(workers_[i]);
  }
  return out;
}

StatusOr<aggregators::Weighted> SecureRound::finish(const ParamSet& global,
                                                    aggregators::Weighted masked,
                                                    const std::vector<std::string>& survivors,
                                                    int64_t* unclipped) {
  FLIGHT_ASSIGN_OR_RETURN(const size_t n, masked_words(global));
  if (masked.params.size() != 1 || masked.params[0].name != kMaskedTensor ||
      static_cast<size_t>(masked.params[0].tensor.numel()) != n + kMaskedExtraWords) {
    return internal_error("secure aggregation: the root's total is not a masked vector of " +
                          std::to_string(n + kMaskedExtraWords) + " words");
  }
  if (masked.weight != static_cast<double>(survivors.size())) {
    return internal_error("secure aggregation: the root folded " + std::to_string(masked.weight) +
                          " masked vectors, the survivors are " + std::to_string(survivors.size()));
  }
  // Phase 3: the survivors reveal what removes the masks left in the total.
  std::vector<bool> survived(workers_.size(), false);
  std::vector<int64_t> survivor_index;
  double weight = 0;
  for (const auto& w : survivors) {
    const int i = index_.at(w);
    survived[i] = true;
    survivor_index.push_back(i);
    weight += weights_[i];
  }
  std::vector<faas::TaskSpec> specs;
  for (const auto& w : survivors) {
    SecAggRevealArgs a;
    a.job = ctx_.job_ref();
    a.node = w;
    a.plan = plan_;
    a.index = index_.at(w);
    a.survivors = survivor_index;
    specs.push_back(ctx_.task(w, "secagg_reveal", std::move(a)));
  }
  auto results = run_phase(ctx_, std::move(specs));
  std::vector<privacy::Reveal> reveals;
  for (size_t k = 0; k < survivors.size(); ++k) {
    auto r = phase_result<SecAggRevealResult>(results[k]);
    privacy::Reveal rev;
    rev.from = index_.at(survivors[k]);
    Status st = r.status();
    for (size_t j = 0; st.is_ok() && j < r->shares.size(); ++j) {
      const auto& v = r->shares[j];
      auto share = privacy::Share::deserialize(v.share.data(), v.share.size());
      st = share.status();
      if (st.is_ok()) rev.shares.push_back({static_cast<int>(v.owner), v.self_mask, *share});
    }
    if (!st.is_ok()) {
      // Its shares are missing; the threshold decides whether that matters.
      spdlog::warn("secure aggregation: worker {}: secagg_reveal failed: {}", survivors[k],
                   st.message());
      continue;
    }
    reveals.push_back(std::move(rev));
  }
  at::Tensor& total = masked.params[0].tensor;
  auto* words = reinterpret_cast<uint32_t*>(total.data_ptr<int32_t>());
  // Every correction is derived (and checked) before any is applied, then the
  // one pass over the total is split across the param_ops threads: the
  // coordinator removes a self mask per survivor and a pair mask per
  // (dropped, surviving neighbour) edge, the largest serial step of the round.
  FLIGHT_ASSIGN_OR_RETURN(const auto terms, coordinator_->corrections(survived, reveals));
  parallel_chunks(static_cast<int64_t>(n + kMaskedExtraWords), int64_t{1} << 16,
                  [&](int64_t begin, int64_t end) {
                    privacy::apply_masks(terms.data(), terms.size(), round_.round, words + begin,
                                         static_cast<size_t>(end - begin),
                                         static_cast<size_t>(begin));
                  });

  // Decode: the total is sum_i round(delta_i * w_i / W * 2^b) over the
  // survivors; dividing by their exact share of W gives the weighted mean.
  const privacy::FixedPoint fp(round_.fractional_bits);
  const double fraction = weight / total_weight_;
  const double word = fp.decode_scalar(words[n]);
  if (std::fabs(word - fraction) > fp.error_bound(survivors.size()) + 1e-12) {
    return data_loss("secure aggregation: the unmasked weight word is " + std::to_string(word) +
                     ", the survivors' share of the weight " + std::to_string(fraction) +
                     " (a masked vector is missing from the total or counted twice)");
  }
  *unclipped = static_cast<int32_t>(words[n + 1]);
  aggregators::Weighted out;
  out.params = global.clone();
  out.weight = weight;
  constexpr size_t kChunk = 4096;
  float delta[kChunk];
  size_t off = 0;
  for (auto& e : out.params) {
    if (!is_floating(e.tensor)) continue;  // integer buffers keep the global's value
    float* p = e.tensor.data_ptr<float>();
    const auto len = static_cast<size_t>(e.tensor.numel());
    for (size_t i = 0; i < len; i += kChunk) {
      const size_t k = std::min(kChunk, len - i);
      fp.decode(words + off + i, k, fraction, delta);
      for (size_t j = 0; j < k; ++j) p[i + j] += delta[j];
    }
    off += len;
  }
  return out;
}

}  // namespace flight::engine
