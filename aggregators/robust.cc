// Robust strategies: coordinate-wise median, trimmed mean (Yin et al. 2018),
// krum and multi-krum (Blanchard et al. 2017). They need every update at
// once, so their Aggregation buffers the updates (shallow handles) and does
// the work in finalize().
//
// Weights: median and trimmed_mean are unweighted (an attacker could inflate
// its weight); multi_krum averages the selected updates by their weights;
// krum returns the one selected update. The partial result passed upward has
// weight = number of updates combined.
//
// NaN: a NaN coordinate sorts as +inf, so a minority of NaN updates cannot
// break the ordering (std::nth_element needs a strict weak order) and is
// trimmed away like any other outlier; a NaN distance makes a krum score +inf.
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>

#include "aggregators/internal.h"
#include "flight/params/param_ops.h"

namespace flight::aggregators {
namespace {

constexpr int64_t kCoordinateGrain = 1 << 14;

// Buffers updates; subclasses combine them in combine().
class BufferedAggregation : public Aggregation {
 public:
  Status accumulate(const ParamSet& update, double weight) override {
    if (finalized_) return failed_precondition("accumulate after finalize");
    FLIGHT_RETURN_IF_ERROR(check_weight(weight, updates_.size()));
    if (updates_.empty()) {
      FLIGHT_RETURN_IF_ERROR(check_supported(update));
      layout_ = layout_of(update);
    } else {
      FLIGHT_RETURN_IF_ERROR(check_layout(layout_, update, updates_.size()));
    }
    ParamSet held;
    for (const auto& e : update) held.add(e.name, e.tensor.contiguous());
    updates_.push_back(std::move(held));
    weights_.push_back(weight);
    return Status::ok();
  }

  size_t count() const override { return updates_.size(); }

  StatusOr<Weighted> finalize() override {
    if (finalized_) return failed_precondition("finalize called twice on one aggregation");
    if (updates_.empty()) return failed_precondition("no updates to aggregate");
    finalized_ = true;
    StatusOr<ParamSet> combined = combine();
    const double n = static_cast<double>(updates_.size());
    updates_.clear();
    if (!combined.is_ok()) return combined.status();
    return Weighted{std::move(combined).value(), n};
  }

 protected:
  virtual StatusOr<ParamSet> combine() = 0;

  std::vector<TensorMeta> layout_;
  std::vector<ParamSet> updates_;
  std::vector<double> weights_;
  bool finalized_ = false;
};

// Elementwise max of tensor i over the given updates (non-floating tensors).
at::Tensor max_over(const std::vector<ParamSet>& updates, const std::vector<size_t>& which,
                    size_t i) {
  at::Tensor out = updates[which[0]][i].tensor.clone(at::MemoryFormat::Contiguous);
  for (size_t k = 1; k < which.size(); ++k) add_scaled_(out, updates[which[k]][i].tensor, 1.0);
  return out;
}

std::vector<size_t> all_indices(size_t n) {
  std::vector<size_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Batcher's odd-even merge sort network for k inputs: a fixed list of
// compare-exchange pairs (i < j) that sorts any k values. For k that is not a
// power of two it is the power-of-two network with every comparator touching
// an index >= k dropped (equivalent to padding with +inf, which never moves).
// 63 comparators for k = 16, 543 for k = 64.
std::vector<std::pair<int, int>> sorting_network(int k) {
  std::vector<std::pair<int, int>> net;
  for (int p = 1; p < k; p <<= 1) {
    for (int step = p; step >= 1; step >>= 1) {
      for (int j = step % p; j + step < k; j += 2 * step) {
        for (int i = 0; i < std::min(step, k - j - step); ++i) {
          if ((i + j) / (2 * p) == (i + j + step) / (2 * p)) net.emplace_back(i + j, i + j + step);
        }
      }
    }
  }
  return net;
}

// Lanes per block: coordinates sorted side by side, so each comparator is a
// vectorised min/max over a row of kLanes values; K x kLanes values stay in L1.
constexpr int64_t kLanes = 64;

using Comparator = std::pair<int, int>;

// Runs the network over one block. GCC/Clang vector extensions make each
// compare-exchange a row of vector min/max (the plain scalar ternary does not
// vectorise without -ffast-math); target_clones adds an AVX2 build picked at
// load time, about 4x faster than the SSE2 baseline here.
template <typename T>
inline __attribute__((always_inline)) void run_network(T* block, const Comparator* net, size_t n) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int64_t kWidth = 32 / sizeof(T);
  for (size_t c = 0; c < n; ++c) {
    T* a = block + net[c].first * kLanes;
    T* b = block + net[c].second * kLanes;
    for (int64_t l = 0; l < kLanes; l += kWidth) {
      V x, y;
      std::memcpy(&x, a + l, sizeof(V));
      std::memcpy(&y, b + l, sizeof(V));
      const V lo = y < x ? y : x;
      const V hi = y < x ? x : y;
      std::memcpy(a + l, &lo, sizeof(V));
      std::memcpy(b + l, &hi, sizeof(V));
    }
  }
}

__attribute__((target_clones("avx2", "default"))) void run_network_f32(float* block,
                                                                       const Comparator* net,
                                                                       size_t n) {
  run_network(block, net, n);
}

__attribute__((target_clones("avx2", "default"))) void run_network_f64(double* block,
                                                                       const Comparator* net,
                                                                       size_t n) {
  run_network(block, net, n);
}

inline void sort_block(float* block, const std::vector<Comparator>& net) {
  run_network_f32(block, net.data(), net.size());
}
inline void sort_block(double* block, const std::vector<Comparator>& net) {
  run_network_f64(block, net.data(), net.size());
}

// Sorts every coordinate of floating tensor i across the updates (a block of
// kLanes coordinates at a time, rows = updates, through the sorting network)
// and hands each sorted block to finish(block, k, count, out): row r of the
// block holds the r-th smallest value of each coordinate. NaNs sort as +inf.
// Parallel over coordinate ranges.
template <typename T, typename Finish>
at::Tensor sort_reduce_typed(const std::vector<at::Tensor>& inputs, const Finish& finish) {
  const int k = static_cast<int>(inputs.size());
  const int64_t n = inputs[0].numel();
  at::Tensor out = at::empty(inputs[0].sizes(), inputs[0].options());
  std::vector<const T*> ptrs(k);
  for (int j = 0; j < k; ++j) ptrs[j] = inputs[j].data_ptr<T>();
  T* po = out.data_ptr<T>();
  const std::vector<std::pair<int, int>> net = sorting_network(k);
  parallel_chunks(n, kCoordinateGrain, [&](int64_t b, int64_t e) {
    std::vector<T> block(static_cast<size_t>(k * kLanes));
    for (int64_t c0 = b; c0 < e; c0 += kLanes) {
      const int64_t count = std::min(kLanes, e - c0);
      for (int r = 0; r < k; ++r) {
        T* row = block.data() + r * kLanes;
        const T* src = ptrs[r] + c0;
        for (int64_t l = 0; l < count; ++l) {
          row[l] = std::isnan(src[l]) ? std::numeric_limits<T>::infinity() : src[l];
        }
        for (int64_t l = count; l < kLanes; ++l) row[l] = 0;  // tail lanes: ignored
      }
      sort_block(block.data(), net);
      finish(static_cast<const T*>(block.data()), k, count, po + c0);
    }
  });
  return out;
}

template <typename Finish>
at::Tensor sort_reduce(const std::vector<ParamSet>& updates, size_t i, const Finish& finish) {
  const at::ScalarType dtype = updates[0][i].tensor.scalar_type();
  const at::ScalarType work = accumulator_dtype(dtype);
  std::vector<at::Tensor> inputs;
  inputs.reserve(updates.size());
  for (const auto& u : updates) {
    const at::Tensor& t = u[i].tensor;
    inputs.push_back(t.scalar_type() == work ? t.contiguous() : t.to(work).contiguous());
  }
  at::Tensor out = work == at::kDouble ? sort_reduce_typed<double>(inputs, finish)
                                       : sort_reduce_typed<float>(inputs, finish);
  return out.scalar_type() == dtype ? out : out.to(dtype);
}

// ---------------------------------------------------------------- median

// Coordinate-wise median; for an even count, the mean of the two middle values.
struct MedianFinish {
  template <typename T>
  void operator()(const T* sorted, int k, int64_t count, T* out) const {
    const T* upper = sorted + (k / 2) * kLanes;
    if (k % 2 == 1) {
      std::copy(upper, upper + count, out);
      return;
    }
    const T* lower = sorted + (k / 2 - 1) * kLanes;
    for (int64_t l = 0; l < count; ++l) {
      out[l] = static_cast<T>((static_cast<double>(lower[l]) + upper[l]) / 2);
    }
  }
};

class MedianAggregation : public BufferedAggregation {
 protected:
  StatusOr<ParamSet> combine() override {
    ParamSet out;
    const auto all = all_indices(updates_.size());
    for (size_t i = 0; i < layout_.size(); ++i) {
      out.add(layout_[i].name, at::isFloatingType(layout_[i].dtype)
                                   ? sort_reduce(updates_, i, MedianFinish{})
                                   : max_over(updates_, all, i));
    }
    return out;
  }
};

// ---------------------------------------------------------------- trimmed mean

// Drops the `trim` smallest and `trim` largest values of each coordinate and
// averages the rest (summed in double).
struct TrimmedMeanFinish {
  int trim;
  template <typename T>
  void operator()(const T* sorted, int k, int64_t count, T* out) const {
    double sum[kLanes] = {};
    for (int r = trim; r < k - trim; ++r) {
      const T* row = sorted + r * kLanes;
      for (int64_t l = 0; l < kLanes; ++l) sum[l] += row[l];
    }
    const double n = static_cast<double>(k - 2 * trim);
    for (int64_t l = 0; l < count; ++l) out[l] = static_cast<T>(sum[l] / n);
  }
};

class TrimmedMeanAggregation : public BufferedAggregation {
 public:
  explicit TrimmedMeanAggregation(double beta) : beta_(beta) {}

 protected:
  StatusOr<ParamSet> combine() override {
    const size_t k = updates_.size();
    const size_t trim = static_cast<size_t>(std::floor(beta_ * static_cast<double>(k)));
    ParamSet out;
    const auto all = all_indices(k);
    for (size_t i = 0; i < layout_.size(); ++i) {
      out.add(layout_[i].name,
              at::isFloatingType(layout_[i].dtype)
                  ? sort_reduce(updates_, i, TrimmedMeanFinish{static_cast<int>(trim)})
                  : max_over(updates_, all, i));
    }
    return out;
  }

 private:
  double beta_;
};

// ---------------------------------------------------------------- krum

// Pairwise squared distances over all floating tensors, accumulated in double.
// Blocked: each block of kBlock coordinates of all K updates (K x 16 KiB) stays
// in L2 while all K(K-1)/2 pairs are computed on it, so the updates are read
// from memory once rather than K times.
std::vector<double> pairwise_distances(const std::vector<ParamSet>& updates,
                                       const std::vector<TensorMeta>& layout) {
  constexpr int64_t kBlock = 4096;
  const size_t k = updates.size();
  std::vector<double> dist(k * k, 0.0);
  for (size_t i = 0; i < layout.size(); ++i) {
    if (!at::isFloatingType(layout[i].dtype)) continue;
    std::vector<at::Tensor> inputs;
    for (const auto& u : updates) inputs.push_back(u[i].tensor.to(at::kFloat).contiguous());
    std::vector<const float*> p(k);
    for (size_t j = 0; j < k; ++j) p[j] = inputs[j].data_ptr<float>();
    const int64_t n = inputs[0].numel();
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    std::mutex mu;
    std::vector<std::pair<int64_t, std::vector<double>>> parts;
    parallel_chunks(blocks, 4, [&](int64_t b0, int64_t b1) {
      std::vector<double> local(k * k, 0.0);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t s = blk * kBlock;
        const int64_t len = std::min(n, s + kBlock) - s;
        for (size_t a = 0; a < k; ++a) {
          for (size_t b = a + 1; b < k; ++b) {
            local[a * k + b] += squared_distance_f32(p[a] + s, p[b] + s, len);
          }
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      parts.emplace_back(b0, std::move(local));
    });
    // Chunk order, not completion order: the result is reproducible.
    std::sort(parts.begin(), parts.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& part : parts) {
      for (size_t j = 0; j < k * k; ++j) dist[j] += part.second[j];
    }
  }
  for (size_t a = 0; a < k; ++a) {
    for (size_t b = a + 1; b < k; ++b) dist[b * k + a] = dist[a * k + b];
  }
  return dist;
}

class KrumAggregation : public BufferedAggregation {
 public:
  // m = 0 means "n - f" (multi_krum's default); krum passes m = 1.
  KrumAggregation(std::string name, int64_t f, int64_t m) : name_(std::move(name)), f_(f), m_(m) {}

 protected:
  StatusOr<ParamSet> combine() override {
    const size_t n = updates_.size();
    const size_t f = static_cast<size_t>(f_);
    if (n <= 2 * f + 2) {
      return invalid_argument(name_ + " with f = " + std::to_string(f) +
                              " needs more than 2f + 2 = " + std::to_string(2 * f + 2) +
                              " updates, got " + std::to_string(n));
    }
    const size_t m = m_ == 0 ? n - f : static_cast<size_t>(m_);
    if (m > n) {
      return invalid_argument(name_ + ": m = " + std::to_string(m) + " exceeds the " +
                              std::to_string(n) + " updates received");
    }
    const std::vector<double> dist = pairwise_distances(updates_, layout_);
    // score(i) = sum of squared distances to its n - f - 2 nearest neighbours.
    const size_t neighbours = n - f - 2;
    std::vector<double> score(n);
    std::vector<double> row;
    for (size_t i = 0; i < n; ++i) {
      row.clear();
      for (size_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const double d = dist[i * n + j];
        row.push_back(std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
      }
      std::partial_sort(row.begin(), row.begin() + neighbours, row.end());
      score[i] = std::accumulate(row.begin(), row.begin() + neighbours, 0.0);
    }
    std::vector<size_t> order = all_indices(n);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return score[a] < score[b]; });
    order.resize(m);
    std::sort(order.begin(), order.end());
    selected_ = order;

    if (m == 1) return updates_[order[0]].clone();
    WeightedMeanAggregation mean;
    for (size_t idx : order) FLIGHT_RETURN_IF_ERROR(mean.accumulate(updates_[idx], weights_[idx]));
    FLIGHT_ASSIGN_OR_RETURN(Weighted w, mean.finalize());
    return std::move(w.params);
  }

 private:
  std::string name_;
  int64_t f_;
  int64_t m_;
  std::vector<size_t> selected_;
};

// ---------------------------------------------------------------- strategies

class RobustStrategy : public Strategy {
 public:
  using Factory = std::function<std::unique_ptr<Aggregation>()>;
  RobustStrategy(StrategyOptions o, nlohmann::json params, Factory factory)
      : Strategy(std::move(o)), params_(std::move(params)), factory_(std::move(factory)) {}

  bool needs_all_updates() const override { return true; }
  std::unique_ptr<Aggregation> begin() const override { return factory_(); }
  nlohmann::json params_json() const override { return params_; }

 private:
  nlohmann::json params_;
  Factory factory_;
};

StatusOr<std::unique_ptr<Strategy>> make_krum(const StrategyOptions& o, bool multi) {
  OptionReader r(o.params, "strategy.params");
  int64_t f = 1;
  r.optional("f", &f);
  int64_t m = multi ? 0 : 1;
  if (multi) r.optional("m", &m);
  if (f < 0) r.fail("f", "must be >= 0");
  if (m < 0) r.fail("m", "must be >= 1 (or 0 for n - f)");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  nlohmann::json params = {{"f", f}};
  if (multi) params["m"] = m;
  std::string name = o.name;
  return std::make_unique<RobustStrategy>(
      o, params, [name, f, m] { return std::make_unique<KrumAggregation>(name, f, m); });
}

}  // namespace

void register_robust_strategies(StrategyRegistry& registry) {
  registry.add("median", [](const StrategyOptions& o) -> StatusOr<std::unique_ptr<Strategy>> {
    OptionReader r(o.params, "strategy.params");
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return std::make_unique<RobustStrategy>(o, nlohmann::json::object(),
                                            [] { return std::make_unique<MedianAggregation>(); });
  });
  registry.add("trimmed_mean", [](const StrategyOptions& o) -> StatusOr<std::unique_ptr<Strategy>> {
    OptionReader r(o.params, "strategy.params");
    double beta = 0.1;
    r.optional("beta", &beta);
    if (!(beta >= 0 && beta < 0.5)) r.fail("beta", "must be in [0, 0.5)");
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return std::make_unique<RobustStrategy>(o, nlohmann::json{{"beta", beta}}, [beta] {
      return std::make_unique<TrimmedMeanAggregation>(beta);
    });
  });
  registry.add("krum", [](const StrategyOptions& o) { return make_krum(o, false); });
  registry.add("multi_krum", [](const StrategyOptions& o) { return make_krum(o, true); });
}

}  // namespace flight::aggregators
