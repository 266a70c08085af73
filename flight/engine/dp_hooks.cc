#include "flight/engine/dp_hooks.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "flight/engine/job.h"
#include "flight/params/param_ops.h"
#include "flight/privacy/prg.h"

namespace flight::engine {
namespace {

using nlohmann::json;
using privacy::NoisePlacement;

// Separates the DP noise streams from the training seeds derived from the
// same run seed (task_seed).
constexpr uint64_t kDpSalt = 0x6470'6e6f'6973'6521ull;  // "dpnoise!"
constexpr int64_t kCoordinatorStream = -1;              // never a worker index
constexpr uint64_t kSumNoise = 1, kCountNoise = 2;

privacy::Seed noise_seed(bool seeded, uint64_t run_seed, int64_t stream, int64_t round) {
  return seeded ? privacy::seed_from_u64(task_seed(run_seed ^ kDpSalt, stream, round))
                : privacy::random_seed();
}

// v += N(0, stddev^2) on every floating element, tensor by tensor in order.
Status add_noise(ParamSet& p, double stddev, privacy::ChaChaRng& rng) {
  if (stddev == 0) return Status::ok();
  for (auto& e : p) {
    if (!is_floating(e.tensor)) continue;
    if (e.tensor.scalar_type() != at::kFloat || !e.tensor.is_contiguous()) {
      return invalid_argument("privacy.dp: noise needs contiguous float32 tensors; '" + e.name +
                              "' is " + std::string(at::toString(e.tensor.scalar_type())));
    }
    privacy::add_gaussian_noise(e.tensor.data_ptr<float>(), static_cast<size_t>(e.tensor.numel()),
                                stddev, rng);
  }
  return Status::ok();
}

}  // namespace

Status read_dp_options(OptionReader& r, privacy::DpOptions* o) {
  json adaptive;
  r.optional("clip_norm", &o->clip_norm)
      .at_least("noise_multiplier", &o->noise_multiplier, 0.0)
      .choice("placement", &o->placement, kNoisePlacementNames)
      .optional("adaptive", &adaptive)
      .optional("delta", &o->delta)
      .at_least("epsilon_budget", &o->epsilon_budget, 0.0)
      .optional("seeded_noise", &o->seeded_noise);
  if (r.has("clip_norm") && !(o->clip_norm > 0)) r.fail("clip_norm", "must be > 0");
  if (r.has("delta") && !(o->delta > 0 && o->delta < 1)) r.fail("delta", "must be in (0, 1)");
  if (adaptive.is_boolean()) {
    o->adaptive = adaptive.get<bool>();
  } else if (adaptive.is_object()) {
    o->adaptive = true;
    OptionReader a = r.child("adaptive");
    a.in_range("target_quantile", &o->target_quantile, 0.0, 1.0)
        .optional("learning_rate", &o->clip_learning_rate)
        .optional("count_noise_fraction", &o->count_noise_fraction);
    if (a.has("learning_rate") && !(o->clip_learning_rate > 0)) {
      a.fail("learning_rate", "must be > 0");
    }
    if (a.has("count_noise_fraction") && !(o->count_noise_fraction > 0)) {
      a.fail("count_noise_fraction", "must be > 0");
    }
    FLIGHT_RETURN_IF_ERROR(a.finish());
  } else if (!adaptive.is_null()) {
    r.fail("adaptive",
           "must be true, false or {target_quantile, learning_rate, "
           "count_noise_fraction}");
  }
  FLIGHT_RETURN_IF_ERROR(r.finish());
  // What the reads above cannot express (e.g. a quantile of exactly 0 or 1).
  Status v = o->validate();
  if (!v.is_ok()) return r.error(v.message());
  return Status::ok();
}

json dp_options_to_json(const privacy::DpOptions& o) {
  json adaptive = false;
  if (o.adaptive) {
    adaptive = json{{"target_quantile", o.target_quantile},
                    {"learning_rate", o.clip_learning_rate},
                    {"count_noise_fraction", o.count_noise_fraction}};
  }
  return json{{"clip_norm", o.clip_norm},
              {"noise_multiplier", o.noise_multiplier},
              {"placement", enum_name(o.placement, kNoisePlacementNames)},
              {"adaptive", adaptive},
              {"delta", o.delta},
              {"epsilon_budget", o.epsilon_budget},
              {"seeded_noise", o.seeded_noise}};
}

StatusOr<bool> privatize_update(const DpTask& dp, uint64_t run_seed, int64_t worker_index,
                                int64_t round, const ParamSet& global, ParamSet* update) {
  FLIGHT_ASSIGN_OR_RETURN(double squared, squared_distance(*update, global));
  const double norm = std::sqrt(squared);
  FLIGHT_ASSIGN_OR_RETURN(ParamSet delta, subtract(*update, global));
  if (norm > dp.clip_norm) scale(delta, dp.clip_norm / norm);
  if (dp.noise_stddev > 0) {
    privacy::ChaChaRng rng(noise_seed(dp.seeded, run_seed, worker_index, round));
    FLIGHT_RETURN_IF_ERROR(add_noise(delta, dp.noise_stddev, rng));
  }
  // global + delta; non-floating tensors: max(trained, global) = trained.
  FLIGHT_RETURN_IF_ERROR(add_scaled(delta, global, 1.0));
  *update = std::move(delta);
  return norm <= dp.clip_norm;
}

Status apply_worker_dp(const TrainArgs& args, uint64_t run_seed, const ParamSet& global,
                       ParamSet* update, TrainResult* out) {
  FLIGHT_ASSIGN_OR_RETURN(bool unclipped, privatize_update(*args.dp, run_seed, args.worker_index,
                                                           args.round, global, update));
  out->dp_unclipped = unclipped;
  out->weight = 1.0;
  return Status::ok();
}

DpServer::DpServer(const privacy::DpOptions& options, int64_t n_workers, uint64_t seed)
    : options_(options), n_workers_(n_workers), seed_(seed), clipper_(options) {}

StatusOr<std::unique_ptr<DpServer>> DpServer::create(const privacy::DpOptions& options,
                                                     int64_t n_workers, int64_t cohort,
                                                     uint64_t seed) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  if (n_workers < 1 || cohort < 1 || cohort > n_workers) {
    return invalid_argument("privacy.dp: " + std::to_string(cohort) + " selected of " +
                            std::to_string(n_workers) + " workers");
  }
  std::unique_ptr<DpServer> s(new DpServer(options, n_workers, seed));
  if (options.adaptive) {
    auto z = s->clipper_.update_noise_multiplier(static_cast<int>(cohort));
    if (!z.is_ok()) {
      return failed_precondition("privacy.dp.adaptive with " + std::to_string(cohort) +
                                 " workers a round: " + z.status().message());
    }
  }
  return s;
}

double DpServer::sum_multiplier(int64_t cohort) const {
  if (!options_.adaptive) return options_.noise_multiplier;
  auto z = clipper_.update_noise_multiplier(static_cast<int>(cohort));
  // create() checked the planned cohort; a smaller one (fewer workers left)
  // has less count noise, so it can always pay.
  return z.is_ok() ? *z : options_.noise_multiplier;
}

std::pair<double, double> DpServer::step(int64_t cohort, double contributors) const {
  const double z = options_.noise_multiplier;
  if (options_.placement == NoisePlacement::kLocal) {
    // One worker's update against anyone who sees it, the coordinator
    // included: it knows who was selected (no amplification, q = 1), and two
    // datasets of the worker may move the clipped delta by 2C.
    return {1.0, z / 2};
  }
  const double q = static_cast<double>(cohort) / static_cast<double>(n_workers_);
  double z_sum = sum_multiplier(cohort);
  if (options_.placement == NoisePlacement::kDistributed) {
    // Each worker added z C / sqrt(cohort); only the contributors' noise is in the sum.
    z_sum *= std::sqrt(contributors / static_cast<double>(cohort));
  }
  if (!options_.adaptive || z_sum == 0) return {q, z_sum};
  // The noised count is a second Gaussian query (sensitivity 1/2, noise
  // sigma_b): together they compose like one with 1/z^2 = 1/z_sum^2 + 1/(2 sigma_b)^2.
  const double sigma_b = clipper_.count_stddev(static_cast<int>(cohort));
  return {q, 1.0 / std::sqrt(1.0 / (z_sum * z_sum) + 1.0 / (4 * sigma_b * sigma_b))};
}

DpTask DpServer::task(int64_t cohort) const {
  DpTask t;
  t.clip_norm = clipper_.clip_norm();
  t.seeded = options_.seeded_noise;
  if (options_.placement != NoisePlacement::kCoordinator) {
    privacy::DpOptions o = options_;
    o.noise_multiplier = sum_multiplier(cohort);
    t.noise_stddev = privacy::noise_stddev(o, t.clip_norm, static_cast<int>(cohort));
  }
  return t;
}

std::string DpServer::over_budget(int64_t round, int64_t cohort) const {
  if (options_.epsilon_budget <= 0) return "";
  privacy::RdpAccountant next = accountant_;
  const auto [q, z] = step(cohort, static_cast<double>(cohort));
  if (!next.compose(q, z).is_ok()) return "";
  const double eps = next.epsilon(options_.delta);
  if (eps <= options_.epsilon_budget) return "";
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "privacy.dp.epsilon_budget: round %lld would bring epsilon to %.4g > budget %.4g "
                "(delta %.3g); stopped after round %lld at epsilon %.4g",
                static_cast<long long>(round), eps, options_.epsilon_budget, options_.delta,
                static_cast<long long>(round - 1), epsilon());
  return buf;
}

Status DpServer::finish_round(int64_t round, const ParamSet& global, int64_t cohort,
                              int64_t reports, int64_t unclipped,
                              aggregators::Weighted* aggregate) {
  const double contributors = aggregate->weight;  // weights are 1 under DP
  const double c = clipper_.clip_norm();
  const bool central_noise = options_.placement == NoisePlacement::kCoordinator;
  if (central_noise || contributors != static_cast<double>(cohort)) {
    // mean of the contributors -> (sum + noise) / cohort.
    FLIGHT_ASSIGN_OR_RETURN(ParamSet delta, subtract(aggregate->params, global));
    scale(delta, contributors / static_cast<double>(cohort));
    if (central_noise) {
      privacy::ChaChaRng rng(noise_seed(options_.seeded_noise, seed_, kCoordinatorStream, round),
                             kSumNoise);
      FLIGHT_RETURN_IF_ERROR(
          add_noise(delta, sum_multiplier(cohort) * c / static_cast<double>(cohort), rng));
    }
    FLIGHT_RETURN_IF_ERROR(add_scaled(delta, global, 1.0));
    aggregate->params = std::move(delta);
  }
  const auto [q, z] = step(cohort, contributors);
  FLIGHT_RETURN_IF_ERROR(accountant_.compose(q, z));
  steps_.emplace_back(q, z);
  if (options_.adaptive) {
    privacy::ChaChaRng rng(noise_seed(options_.seeded_noise, seed_, kCoordinatorStream, round),
                           kCountNoise);
    const int m = static_cast<int>(cohort);
    clipper_.update(
        clipper_.noise_count(static_cast<int>(unclipped), static_cast<int>(reports), m, rng), m);
  }
  return Status::ok();
}

json DpServer::summary() const {
  const double eps = epsilon();
  json s = dp_options_to_json(options_);
  s["epsilon"] = std::isfinite(eps) ? json(eps) : json("inf");
  s["rounds_accounted"] = rounds();
  s["final_clip_norm"] = clipper_.clip_norm();
  s["sampling_rate"] = steps_.empty() ? json(nullptr) : json(steps_.back().first);
  return s;
}

json DpServer::state() const {
  json steps = json::array();
  for (const auto& [q, z] : steps_) steps.push_back({q, z});
  return json{{"steps", steps}, {"clip_norm", clipper_.clip_norm()}};
}

Status DpServer::load_state(const json& j) {
  if (!j.is_object() || !j.contains("steps") || !j["steps"].is_array() ||
      !j.contains("clip_norm") || !j["clip_norm"].is_number()) {
    return data_loss(
        "checkpoint: privacy.dp state missing or malformed (was the run started "
        "without privacy.dp?)");
  }
  privacy::RdpAccountant accountant;
  std::vector<std::pair<double, double>> steps;
  for (const auto& s : j["steps"]) {
    if (!s.is_array() || s.size() != 2 || !s[0].is_number() || !s[1].is_number()) {
      return data_loss("checkpoint: malformed privacy.dp step " + s.dump());
    }
    steps.emplace_back(s[0].get<double>(), s[1].get<double>());
    FLIGHT_RETURN_IF_ERROR(accountant.compose(steps.back().first, steps.back().second));
  }
  const double c = j["clip_norm"].get<double>();
  if (!(c > 0)) return data_loss("checkpoint: privacy.dp clip_norm must be > 0");
  accountant_ = std::move(accountant);
  steps_ = std::move(steps);
  clipper_.set_clip_norm(c);
  return Status::ok();
}

}  // namespace flight::engine
