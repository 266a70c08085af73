// Partitioners: split a training set across workers as lists of sample
// indices. Seeded and reproducible (same labels, workers, spec and seed → the
// same lists on any machine with the same standard library); disjoint (every
// sample is used at most once). A worker's partition is its only per-worker
// data state: the samples stay in the shared Dataset.
//
// Methods:
//   iid        shuffle, then split into equal parts (sizes differ by at most 1);
//              with samples_alpha > 0, part sizes follow Dirichlet(samples_alpha).
//              Every sample is used.
//   dirichlet  label skew like the Python reference's federated_split: each
//              worker draws label proportions q ~ Dirichlet(alpha) and takes
//              samples label by label from shuffled per-label pools, all
//              workers drawing in turn so that no worker is left with only
//              leftovers; when a label runs out, a worker draws from the labels
//              it wants that remain. Sizes: equal, or Dirichlet(samples_alpha)
//              when samples_alpha > 0. Every sample is used. alpha → ∞ is iid;
//              alpha 0.1 gives most workers one or two dominant labels.
//   shards     sort by label, cut into workers × shards_per_worker equal
//              shards, give each worker shards_per_worker random shards
//              (McMahan et al.). Every sample is used.
//   given      fixed per-worker lists handed over with an in-memory dataset
//              (DatasetPair::parts; see worker_partitions in dataset.h).
// With samples_alpha > 0 every worker still gets at least one sample when there
// are at least as many samples as workers.
//
// Thread safety: pure functions; call concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::learning {

// `partition:` in a config. JSON:
//   {"method": "dirichlet", "alpha": 0.5, "samples_alpha": 0, "shards_per_worker": 2}
struct PartitionSpec {
  std::string method = "iid";     // iid | dirichlet | shards | given
  double alpha = 1.0;             // dirichlet label concentration (> 0)
  double samples_alpha = 0;       // sample-count skew for iid/dirichlet; 0 = equal sizes
  int64_t shards_per_worker = 2;  // shards only (>= 1)

  [[nodiscard]] static StatusOr<PartitionSpec> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] Status validate() const;
};

// Index lists, one per worker (worker i gets result[i]), each in random order.
// `labels` is a 1-D integer tensor (int64 or any integer dtype). Errors: no
// workers, empty labels, negative labels, more shards than samples.
[[nodiscard]] StatusOr<std::vector<std::vector<int64_t>>> partition(const at::Tensor& labels,
                                                                    size_t n_workers,
                                                                    const PartitionSpec& spec,
                                                                    uint64_t seed);

// Per-worker label counts: result[w][k] = samples of label k in parts[w].
// num_classes <= 0 means max label + 1.
std::vector<std::vector<int64_t>> label_histograms(const at::Tensor& labels,
                                                   const std::vector<std::vector<int64_t>>& parts,
                                                   int64_t num_classes = 0);

}  // namespace flight::learning
