#include "flight/learning/partition.h"

#include <ATen/ops/max.h>
#include <ATen/ops/min.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/params/param_set.h"

namespace flight::learning {
namespace {

using Rng = std::mt19937_64;

// Fisher-Yates with our own draws: std::shuffle's use of the engine is
// implementation-defined, this is the same everywhere.
template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

double uniform01(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Dirichlet(alpha, ..., alpha) of dimension n, via normalised Gamma draws.
// Tiny alphas can make every Gamma draw underflow to 0; the limit of the
// distribution is then all mass on one uniformly chosen coordinate.
std::vector<double> dirichlet(size_t n, double alpha, Rng& rng) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  std::vector<double> p(n);
  double sum = 0;
  for (auto& x : p) sum += (x = gamma(rng));
  if (!(sum > 0)) {
    std::fill(p.begin(), p.end(), 0.0);
    p[rng() % n] = 1.0;
    return p;
  }
  for (auto& x : p) x /= sum;
  return p;
}

// Part sizes summing to total: equal (differing by at most one), or
// Dirichlet(samples_alpha) proportions rounded by largest remainder, with at
// least one sample per part when total >= n.
std::vector<int64_t> part_sizes(int64_t total, size_t n, double samples_alpha, Rng& rng) {
  std::vector<int64_t> sizes(n, total / static_cast<int64_t>(n));
  if (samples_alpha <= 0) {
    for (int64_t i = 0; i < total % static_cast<int64_t>(n); ++i) ++sizes[i];
    return sizes;
  }
  std::vector<double> p = dirichlet(n, samples_alpha, rng);
  std::vector<std::pair<double, size_t>> remainders(n);
  int64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    double exact = p[i] * static_cast<double>(total);
    sizes[i] = static_cast<int64_t>(exact);
    assigned += sizes[i];
    remainders[i] = {exact - static_cast<double>(sizes[i]), i};
  }
  std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  for (size_t i = 0; assigned < total; i = (i + 1) % n, ++assigned) ++sizes[remainders[i].second];
  if (total >= static_cast<int64_t>(n)) {
    // Every worker trains on something: take from the largest parts.
    for (size_t i = 0; i < n; ++i) {
      if (sizes[i] > 0) continue;
      size_t largest =
          static_cast<size_t>(std::max_element(sizes.begin(), sizes.end()) - sizes.begin());
      --sizes[largest];
      ++sizes[i];
    }
  }
  return sizes;
}

std::vector<int64_t> to_vector(const at::Tensor& labels) {
  at::Tensor l = labels.to(at::kLong).contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + l.numel());
}

std::vector<std::vector<int64_t>> split_iid(const std::vector<int64_t>& labels, size_t n,
                                            const PartitionSpec& spec, Rng& rng) {
  std::vector<int64_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::vector<int64_t> sizes =
      part_sizes(static_cast<int64_t>(labels.size()), n, spec.samples_alpha, rng);
  std::vector<std::vector<int64_t>> parts(n);
  size_t pos = 0;
  for (size_t w = 0; w < n; ++w) {
    parts[w].assign(order.begin() + pos, order.begin() + pos + sizes[w]);
    pos += sizes[w];
  }
  return parts;
}

std::vector<std::vector<int64_t>> split_dirichlet(const std::vector<int64_t>& labels,
                                                  int64_t num_classes, size_t n,
                                                  const PartitionSpec& spec, Rng& rng) {
  const size_t k = static_cast<size_t>(num_classes);
  // Shuffled per-label pools, consumed from the back.
  std::vector<std::vector<int64_t>> pools(k);
  for (size_t i = 0; i < labels.size(); ++i) pools[labels[i]].push_back(static_cast<int64_t>(i));
  for (auto& pool : pools) shuffle(pool, rng);

  std::vector<int64_t> sizes =
      part_sizes(static_cast<int64_t>(labels.size()), n, spec.samples_alpha, rng);
  std::vector<std::vector<double>> wants(n);
  for (size_t w = 0; w < n; ++w) wants[w] = dirichlet(k, spec.alpha, rng);

  std::vector<std::vector<int64_t>> parts(n);
  for (size_t w = 0; w < n; ++w) parts[w].reserve(static_cast<size_t>(sizes[w]));
  // All workers draw one sample per turn (in a fresh random order each turn),
  // so label exhaustion hits everyone alike instead of the last workers.
  std::vector<size_t> active;
  for (size_t w = 0; w < n; ++w) {
    if (sizes[w] > 0) active.push_back(w);
  }
  std::vector<double> weights(k);
  while (!active.empty()) {
    shuffle(active, rng);
    std::vector<size_t> still;
    still.reserve(active.size());
    for (size_t w : active) {
      // Draw a label from the worker's proportions restricted to non-empty pools.
      double total = 0;
      for (size_t c = 0; c < k; ++c) total += (weights[c] = pools[c].empty() ? 0.0 : wants[w][c]);
      size_t label = k;
      if (total > 0) {
        double u = uniform01(rng) * total;
        for (size_t c = 0; c < k; ++c) {
          if (weights[c] <= 0) continue;
          label = c;
          if ((u -= weights[c]) < 0) break;
        }
      } else {
        // The labels this worker wants are gone: take the fullest remaining pool.
        size_t best = 0;
        for (size_t c = 1; c < k; ++c) {
          if (pools[c].size() > pools[best].size()) best = c;
        }
        label = best;
      }
      parts[w].push_back(pools[label].back());
      pools[label].pop_back();
      if (static_cast<int64_t>(parts[w].size()) < sizes[w]) still.push_back(w);
    }
    active.swap(still);
  }
  for (auto& p : parts) shuffle(p, rng);
  return parts;
}

StatusOr<std::vector<std::vector<int64_t>>> split_shards(const std::vector<int64_t>& labels,
                                                         size_t n, const PartitionSpec& spec,
                                                         Rng& rng) {
  const int64_t n_shards = static_cast<int64_t>(n) * spec.shards_per_worker;
  const int64_t total = static_cast<int64_t>(labels.size());
  if (n_shards > total) {
    return invalid_argument("partition shards: " + std::to_string(n) + " workers x " +
                            std::to_string(spec.shards_per_worker) +
                            " shards = " + std::to_string(n_shards) + " shards, but only " +
                            std::to_string(total) + " samples");
  }
  // Label-sorted order, random within a label.
  std::vector<int64_t> order(labels.size());
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });
  std::vector<int64_t> shard_ids(static_cast<size_t>(n_shards));
  std::iota(shard_ids.begin(), shard_ids.end(), 0);
  shuffle(shard_ids, rng);
  std::vector<std::vector<int64_t>> parts(n);
  for (size_t w = 0; w < n; ++w) {
    for (int64_t s = 0; s < spec.shards_per_worker; ++s) {
      int64_t id = shard_ids[w * spec.shards_per_worker + s];
      // Shard boundaries spread the remainder evenly: [id*total/S, (id+1)*total/S).
      int64_t begin = id * total / n_shards, end = (id + 1) * total / n_shards;
      parts[w].insert(parts[w].end(), order.begin() + begin, order.begin() + end);
    }
    shuffle(parts[w], rng);
  }
  return parts;
}

}  // namespace

StatusOr<PartitionSpec> PartitionSpec::from_json(const nlohmann::json& j) {
  const std::string where = "partition";
  // A bare string is a method with default parameters: `partition: iid`.
  PartitionSpec spec;
  if (j.is_string()) {
    spec.method = j.get<std::string>();
  } else {
    OptionReader r(j, where);
    r.optional("method", &spec.method)
        .optional("alpha", &spec.alpha)
        .optional("samples_alpha", &spec.samples_alpha)
        .optional("shards_per_worker", &spec.shards_per_worker);
    FLIGHT_RETURN_IF_ERROR(r.finish());
  }
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  return spec;
}

nlohmann::json PartitionSpec::to_json() const {
  nlohmann::json j = {{"method", method}};
  if (method == "dirichlet") j["alpha"] = alpha;
  if (method != "shards") j["samples_alpha"] = samples_alpha;
  if (method == "shards") j["shards_per_worker"] = shards_per_worker;
  return j;
}

Status PartitionSpec::validate() const {
  const std::vector<std::string> known = {"iid", "dirichlet", "shards", "given"};
  if (std::find(known.begin(), known.end(), method) == known.end()) {
    return invalid_argument("partition.method: unknown method '" + method + "'" +
                            did_you_mean(method, known) +
                            " (known: iid, dirichlet, shards, given)");
  }
  if (!(alpha > 0)) {
    return invalid_argument("partition.alpha must be > 0, got " + std::to_string(alpha));
  }
  if (!(samples_alpha >= 0)) {
    return invalid_argument("partition.samples_alpha must be >= 0 (0 = equal sizes), got " +
                            std::to_string(samples_alpha));
  }
  if (shards_per_worker < 1) {
    return invalid_argument("partition.shards_per_worker must be >= 1, got " +
                            std::to_string(shards_per_worker));
  }
  if (method == "shards" && samples_alpha != 0) {
    return invalid_argument("partition.samples_alpha does not apply to method 'shards'");
  }
  return Status::ok();
}

StatusOr<std::vector<std::vector<int64_t>>> partition(const at::Tensor& labels, size_t n_workers,
                                                      const PartitionSpec& spec, uint64_t seed) {
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  if (spec.method == "given") {
    return failed_precondition(
        "partition: method 'given' takes the index lists of an in-memory dataset "
        "(worker_partitions), not labels");
  }
  if (n_workers == 0) return invalid_argument("partition: no workers");
  if (!labels.defined() || labels.dim() != 1 || labels.numel() == 0) {
    return invalid_argument("partition: labels must be a non-empty 1-d tensor");
  }
  if (at::isFloatingType(labels.scalar_type()) || labels.scalar_type() == at::kBool) {
    return invalid_argument("partition: labels must be integers, got " + describe_tensor(labels));
  }
  std::vector<int64_t> l = to_vector(labels);
  int64_t max_label = *std::max_element(l.begin(), l.end());
  int64_t min_label = *std::min_element(l.begin(), l.end());
  if (min_label < 0) {
    return invalid_argument("partition: negative label " + std::to_string(min_label));
  }
  // Mix the seed so that seeds 0, 1, 2... give unrelated streams.
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), 0x5eedu};
  Rng rng(seq);
  if (spec.method == "iid") return split_iid(l, n_workers, spec, rng);
  if (spec.method == "dirichlet") return split_dirichlet(l, max_label + 1, n_workers, spec, rng);
  return split_shards(l, n_workers, spec, rng);
}

std::vector<std::vector<int64_t>> label_histograms(const at::Tensor& labels,
                                                   const std::vector<std::vector<int64_t>>& parts,
                                                   int64_t num_classes) {
  std::vector<int64_t> l = to_vector(labels);
  if (num_classes <= 0) {
    num_classes = l.empty() ? 0 : *std::max_element(l.begin(), l.end()) + 1;
  }
  std::vector<std::vector<int64_t>> hist(parts.size(), std::vector<int64_t>(num_classes, 0));
  for (size_t w = 0; w < parts.size(); ++w) {
    for (int64_t i : parts[w]) {
      FLIGHT_CHECK(i >= 0 && i < static_cast<int64_t>(l.size()), "index out of range in part");
      int64_t c = l[i];
      if (c >= 0 && c < num_classes) ++hist[w][c];
    }
  }
  return hist;
}

}  // namespace flight::learning
