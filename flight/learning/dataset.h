// Datasets: Fashion-MNIST and MNIST read from idx files (gzipped or not), and a
// seeded synthetic classification set for scale tests that need no files.
//
// A dataset is loaded once per process per spec (load_dataset caches it) and
// shared read-only by every virtual worker: a worker is an index list into
// the shared tensors (see partition.h), never a copy.
//
// Thread safety: load_dataset/read_dataset may be called concurrently. A
// Dataset is immutable once returned; its tensors must not be written.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/learning/partition.h"

namespace flight::learning {

// `data:` in a config. JSON:
//   {"dataset": "fashion_mnist", "root": "/usr/share/datasets/fashion-mnist",
//    "synthetic_samples": 10000, "synthetic_test_samples": 2000,
//    "synthetic_classes": 10, "synthetic_seed": 0,
//    "partition": {"method": "dirichlet", "alpha": 0.5}}
struct DataSpec {
  // fashion_mnist | mnist | synthetic | the name of an in-memory dataset
  // (register_dataset).
  std::string dataset = "fashion_mnist";
  // Directory holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
  // t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (fashion_mnist,
  // mnist). Debian's dataset-fashion-mnist installs them at the default.
  std::string root = "/usr/share/datasets/fashion-mnist";
  // synthetic only: training / test set sizes, number of classes, seed.
  int64_t synthetic_samples = 10000;
  int64_t synthetic_test_samples = 2000;
  int64_t synthetic_classes = 10;
  uint64_t synthetic_seed = 0;
  // How the training set is split across workers (used by the caller with
  // partition(); not part of what is loaded or cached).
  PartitionSpec partition;

  [[nodiscard]] static StatusOr<DataSpec> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] Status validate() const;
};

// An in-memory labelled image set.
struct Dataset {
  at::Tensor images;  // [N, 1, 28, 28] float32, contiguous, normalised ((x/255 - mean) / std)
  at::Tensor labels;  // [N] int64 in [0, num_classes)
  int64_t num_classes = 0;
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

struct DatasetPair {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> test;
  // Optional fixed per-worker index lists into `train` (worker i gets
  // (*parts)[i], workers in topology order), used by partition method `given`
  // instead of a partitioner: data that arrives already split, as in the Python
  // reference's federated_fit. Only in-memory datasets carry them.
  std::shared_ptr<const std::vector<std::vector<int64_t>>> parts;
};

// The dataset for the spec, loaded on first use and kept in the process's
// dataset cache (keyed by everything but `partition`), shared read-only. The
// cache is bounded by bytes (dataset_bytes of each entry; LRU, see
// set_dataset_cache_bytes): an evicted dataset is read again by the next spec
// that needs it, and one still held by a caller stays alive (and is never
// evicted while held). Errors (missing file → NotFound naming it; bad idx
// header or truncated file → DataLoss naming it) are not cached, so a later
// call retries.
[[nodiscard]] StatusOr<DatasetPair> load_dataset(const DataSpec& spec);

// The bytes a pair holds: the tensors' nbytes (images and labels of both
// splits) plus the index lists of `parts`.
uint64_t dataset_bytes(const DatasetPair& data);

// The dataset cache's budget in bytes (default kDefaultDatasetCacheBytes: the
// Fashion-MNIST pair is ~220 MB, so a few of them). Shrinking evicts at once.
inline constexpr uint64_t kDefaultDatasetCacheBytes = 1ull << 30;
void set_dataset_cache_bytes(uint64_t bytes);

struct DatasetCacheStats {
  uint64_t capacity = 0;  // bytes
  uint64_t bytes = 0;     // held by cached entries (pinned ones included)
  size_t entries = 0;
  uint64_t evictions = 0;  // since the process started
};
DatasetCacheStats dataset_cache_stats();

// As load_dataset, bypassing the cache (always reads/generates anew).
[[nodiscard]] StatusOr<DatasetPair> read_dataset(const DataSpec& spec);

// In-memory datasets by name, for tensors that already live in the process
// (the Python front end hands torch tensors over): a DataSpec whose `dataset`
// names one reads these tensors instead of files, shared, never copied, and the
// partitioners apply as usual. Names are process-local and may not shadow a
// built-in dataset. Checks: train and test both present, labels 1-D int64 of
// the images' length, num_classes >= 1 and above every label, parts (when
// given) index inside train. Registering a name twice replaces the pair.
[[nodiscard]] Status register_dataset(const std::string& name, DatasetPair data);
// Forgets `name` (runs still holding the pair keep it alive). Unknown: no-op.
void unregister_dataset(const std::string& name);

// The workers' index lists into data.train: the partitioner's (partition()),
// or with method `given` the pair's fixed `parts` (their count must be
// `n_workers`).
[[nodiscard]] StatusOr<std::vector<std::vector<int64_t>>> worker_partitions(
    const DatasetPair& data, size_t n_workers, const PartitionSpec& spec, uint64_t seed);

// Reads one idx file (gzipped or plain, detected from the content). Returns
// the raw uint8 tensor with the file's dimensions ([N, 28, 28] images, [N]
// labels). Errors name the file.
[[nodiscard]] StatusOr<at::Tensor> read_idx_file(const std::string& path);

}  // namespace flight::learning
