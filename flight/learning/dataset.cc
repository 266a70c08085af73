#include "flight/learning/dataset.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <zlib.h>

#include <sys/stat.h>

#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>

#include "flight/base/lru_cache.h"
#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/params/param_set.h"

namespace flight::learning {
namespace {

constexpr const char* kKnownDatasets[] = {"fashion_mnist", "mnist", "synthetic"};

// register_dataset's table.
struct MemoryDatasets {
  std::mutex mu;
  std::map<std::string, DatasetPair> by_name;
};

MemoryDatasets& memory_datasets() {
  static MemoryDatasets* table = new MemoryDatasets();  // leaked: tasks may run during exit
  return *table;
}

bool is_builtin(const std::string& name) {
  for (const char* k : kKnownDatasets) {
    if (name == k) return true;
  }
  return false;
}

std::optional<DatasetPair> find_memory_dataset(const std::string& name) {
  MemoryDatasets& t = memory_datasets();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.by_name.find(name);
  if (it == t.by_name.end()) return std::nullopt;
  return it->second;
}

Status check_split(const std::shared_ptr<const Dataset>& d, const std::string& what) {
  if (!d || !d->images.defined() || !d->labels.defined()) {
    return invalid_argument(what + ": images and labels are required");
  }
  if (d->images.dim() < 1) return invalid_argument(what + ": images must have a batch dimension");
  if (d->labels.dim() != 1 || d->labels.scalar_type() != at::kLong) {
    return invalid_argument(what + ": labels must be a 1-D int64 tensor, got " +
                            describe_tensor(d->labels));
  }
  if (d->labels.size(0) != d->images.size(0)) {
    return invalid_argument(what + ": " + std::to_string(d->images.size(0)) + " images but " +
                            std::to_string(d->labels.size(0)) + " labels");
  }
  if (d->labels.size(0) == 0) return invalid_argument(what + ": no samples");
  if (d->num_classes < 1) return invalid_argument(what + ": num_classes must be >= 1");
  const int64_t lo = d->labels.min().item<int64_t>(), hi = d->labels.max().item<int64_t>();
  if (lo < 0 || hi >= d->num_classes) {
    return invalid_argument(what + ": labels must be in [0, " + std::to_string(d->num_classes) +
                            "), found " + std::to_string(lo < 0 ? lo : hi));
  }
  return Status::ok();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

uint32_t big_endian(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Reads exactly n bytes; false on a short read.
bool read_exact(gzFile f, void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    // gzread takes an unsigned count; read in chunks well below its limit.
    unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
    int got = gzread(f, p, chunk);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// "<root>/<stem>.gz" when present, else "<root>/<stem>", else NotFound naming both.
StatusOr<std::string> find_idx(const std::string& root, const std::string& stem) {
  const std::string plain = root + "/" + stem;
  const std::string gz = plain + ".gz";
  if (file_exists(gz)) return gz;
  if (file_exists(plain)) return plain;
  return not_found("dataset file '" + gz + "' not found (nor '" + plain + "')");
}

// Per-dataset normalisation constants (mean, std of the training pixels in [0, 1]).
void norm_constants(const std::string& dataset, double* mean, double* std) {
  if (dataset == "mnist") {
    *mean = 0.1307;
    *std = 0.3081;
  } else {
    *mean = 0.2860;
    *std = 0.3530;
  }
}

StatusOr<std::shared_ptr<const Dataset>> read_idx_split(const DataSpec& spec,
                                                        const std::string& prefix) {
  FLIGHT_ASSIGN_OR_RETURN(std::string images_path,
                          find_idx(spec.root, prefix + "-images-idx3-ubyte"));
  FLIGHT_ASSIGN_OR_RETURN(std::string labels_path,
                          find_idx(spec.root, prefix + "-labels-idx1-ubyte"));
  FLIGHT_ASSIGN_OR_RETURN(at::Tensor raw_images, read_idx_file(images_path));
  FLIGHT_ASSIGN_OR_RETURN(at::Tensor raw_labels, read_idx_file(labels_path));
  if (raw_images.dim() != 3) {
    return data_loss("'" + images_path + "' holds " + std::to_string(raw_images.dim()) +
                     "-d data, expected [N, rows, cols] images");
  }
  if (raw_labels.dim() != 1) {
    return data_loss("'" + labels_path + "' holds " + std::to_string(raw_labels.dim()) +
                     "-d data, expected [N] labels");
  }
  if (raw_images.size(0) != raw_labels.size(0)) {
    return data_loss("'" + images_path + "' has " + std::to_string(raw_images.size(0)) +
                     " images but '" + labels_path + "' has " + std::to_string(raw_labels.size(0)) +
                     " labels");
  }
  const int64_t n = raw_images.size(0);
  const int64_t rows = raw_images.size(1), cols = raw_images.size(2);

  double mean = 0, std = 1;
  norm_constants(spec.dataset, &mean, &std);
  float lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<float>((v / 255.0 - mean) / std);

  auto ds = std::make_shared<Dataset>();
  ds->images = at::empty({n, 1, rows, cols}, at::kFloat);
  const uint8_t* src = raw_images.data_ptr<uint8_t>();
  float* dst = ds->images.data_ptr<float>();
  const int64_t total = n * rows * cols;
  for (int64_t i = 0; i < total; ++i) dst[i] = lut[src[i]];

  ds->labels = at::empty({n}, at::kLong);
  const uint8_t* lsrc = raw_labels.data_ptr<uint8_t>();
  int64_t* ldst = ds->labels.data_ptr<int64_t>();
  int64_t max_label = 0;
  for (int64_t i = 0; i < n; ++i) {
    ldst[i] = lsrc[i];
    max_label = std::max<int64_t>(max_label, lsrc[i]);
  }
  if (max_label >= 10) {
    return data_loss("'" + labels_path + "' has label " + std::to_string(max_label) +
                     ", expected 0..9");
  }
  ds->num_classes = 10;
  return std::shared_ptr<const Dataset>(std::move(ds));
}

// Class prototypes plus Gaussian noise: learnable, seeded, no files.
DatasetPair make_synthetic(const DataSpec& spec) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.synthetic_seed);
  const int64_t k = spec.synthetic_classes;
  at::Tensor prototypes = at::randn({k, 1, 28, 28}, gen, at::kFloat);
  auto make = [&](int64_t n) {
    auto ds = std::make_shared<Dataset>();
    ds->labels = at::randint(k, {n}, gen, at::kLong);
    ds->images = at::randn({n, 1, 28, 28}, gen, at::kFloat)
                     .mul_(2.0)
                     .add_(prototypes.index_select(0, ds->labels));
    ds->num_classes = k;
    return std::shared_ptr<const Dataset>(std::move(ds));
  };
  DatasetPair pair;
  pair.train = make(spec.synthetic_samples);
  pair.test = make(spec.synthetic_test_samples);
  return pair;
}

}  // namespace

StatusOr<DataSpec> DataSpec::from_json(const nlohmann::json& j) {
  const std::string where = "data";
  DataSpec spec;
  nlohmann::json partition;
  OptionReader r(j, where);
  r.optional("dataset", &spec.dataset)
      .optional("root", &spec.root)
      .optional("synthetic_samples", &spec.synthetic_samples)
      .optional("synthetic_test_samples", &spec.synthetic_test_samples)
      .optional("synthetic_classes", &spec.synthetic_classes)
      .optional("synthetic_seed", &spec.synthetic_seed)
      .optional("partition", &partition);
  FLIGHT_RETURN_IF_ERROR(r.finish());
  if (!partition.is_null()) {
    auto p = PartitionSpec::from_json(partition);
    if (!p.is_ok()) return p.status().with_context(where);
    spec.partition = *p;
  }
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  return spec;
}

nlohmann::json DataSpec::to_json() const {
  nlohmann::json j = {{"dataset", dataset}, {"partition", partition.to_json()}};
  if (dataset == "synthetic") {
    j["synthetic_samples"] = synthetic_samples;
    j["synthetic_test_samples"] = synthetic_test_samples;
    j["synthetic_classes"] = synthetic_classes;
    j["synthetic_seed"] = synthetic_seed;
  } else {
    j["root"] = root;
  }
  return j;
}

Status DataSpec::validate() const {
  if (find_memory_dataset(dataset)) return partition.validate().with_context("data");
  std::vector<std::string> known(std::begin(kKnownDatasets), std::end(kKnownDatasets));
  bool ok = false;
  for (const auto& k : known) ok = ok || k == dataset;
  if (!ok) {
    return invalid_argument("data.dataset: unknown dataset '" + dataset + "'" +
                            did_you_mean(dataset, known) + " (known: " + join(known, ", ") + ")");
  }
  if (dataset == "synthetic") {
    if (synthetic_samples < 1) return invalid_argument("data.synthetic_samples must be >= 1");
    if (synthetic_test_samples < 1) {
      return invalid_argument("data.synthetic_test_samples must be >= 1");
    }
    if (synthetic_classes < 2) return invalid_argument("data.synthetic_classes must be >= 2");
  } else if (root.empty()) {
    return invalid_argument("data.root: empty directory for dataset '" + dataset + "'");
  }
  return partition.validate().with_context("data");
}

StatusOr<at::Tensor> read_idx_file(const std::string& path) {
  if (!file_exists(path)) return not_found("dataset file '" + path + "' not found");
  // gzopen reads plain files transparently, so one path serves .gz and raw idx.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return not_found("cannot open dataset file '" + path + "'");
  gzbuffer(f, 1 << 20);
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};

  unsigned char magic[4];
  if (!read_exact(f, magic, 4)) return data_loss("'" + path + "' is empty or not an idx file");
  // idx: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4) {
    return data_loss("'" + path + "' is not an unsigned-byte idx file (bad magic number)");
  }
  std::vector<int64_t> dims(magic[3]);
  int64_t total = 1;
  for (auto& d : dims) {
    unsigned char b[4];
    if (!read_exact(f, b, 4)) return data_loss("'" + path + "' is truncated in its header");
    d = big_endian(b);
    total *= d;
    if (total > (int64_t{1} << 34)) return data_loss("'" + path + "' claims an absurd size");
  }
  at::Tensor out = at::empty(dims, at::kByte);
  if (!read_exact(f, out.data_ptr<uint8_t>(), static_cast<size_t>(total))) {
    return data_loss("'" + path + "' is truncated: expected " + std::to_string(total) +
                     " data bytes");
  }
  return out;
}

StatusOr<DatasetPair> read_dataset(const DataSpec& spec) {
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  if (auto memory = find_memory_dataset(spec.dataset)) return *memory;
  if (spec.dataset == "synthetic") return make_synthetic(spec);
  // Inflating is the cost (~50 MB of pixels); the test split inflates on a
  // second thread while this one does the training split.
  auto test = std::async(std::launch::async, [&spec] { return read_idx_split(spec, "t10k"); });
  auto train = read_idx_split(spec, "train");
  auto test_result = test.get();
  DatasetPair pair;
  FLIGHT_ASSIGN_OR_RETURN(pair.train, std::move(train));
  FLIGHT_ASSIGN_OR_RETURN(pair.test, std::move(test_result));
  return pair;
}

namespace {

// load_dataset's cache. One lock for all loads: loads are rare (once per spec
// while cached) and holding it makes concurrent first calls wait for one
// read, not race.
struct DatasetCache {
  std::mutex mu;
  // A pair is in use while someone outside the cache holds its splits (a
  // job's runtime, a running task).
  ByteLru<DatasetPair> lru{kDefaultDatasetCacheBytes, [](const DatasetPair& p) {
                             return p.train.use_count() > 1 || p.test.use_count() > 1;
                           }};
};

DatasetCache& dataset_cache() {
  static DatasetCache* cache = new DatasetCache();  // leaked: tasks may run during exit
  return *cache;
}

uint64_t split_bytes(const std::shared_ptr<const Dataset>& d) {
  if (!d) return 0;
  uint64_t n = 0;
  if (d->images.defined()) n += d->images.nbytes();
  if (d->labels.defined()) n += d->labels.nbytes();
  return n;
}

}  // namespace

uint64_t dataset_bytes(const DatasetPair& data) {
  uint64_t n = split_bytes(data.train) + split_bytes(data.test);
  if (data.parts) {
    for (const auto& p : *data.parts) n += p.size() * sizeof(int64_t);
  }
  return n;
}

void set_dataset_cache_bytes(uint64_t bytes) {
  DatasetCache& c = dataset_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.lru.set_capacity(bytes);
}

DatasetCacheStats dataset_cache_stats() {
  DatasetCache& c = dataset_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.lru.capacity(), c.lru.bytes(), c.lru.size(), c.lru.evictions()};
}

StatusOr<DatasetPair> load_dataset(const DataSpec& spec) {
  FLIGHT_RETURN_IF_ERROR(spec.validate());
  // In memory already: caching would only keep it alive after unregistering.
  if (auto memory = find_memory_dataset(spec.dataset)) return *memory;
  nlohmann::json key_json = spec.to_json();
  key_json.erase("partition");
  const std::string key = key_json.dump();
  DatasetCache& c = dataset_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto hit = c.lru.get(key)) return *hit;
  FLIGHT_ASSIGN_OR_RETURN(DatasetPair pair, read_dataset(spec));
  // `pair` is held here, so the put cannot evict it.
  c.lru.put(key, pair, dataset_bytes(pair));
  return pair;
}

Status register_dataset(const std::string& name, DatasetPair data) {
  if (name.empty()) return invalid_argument("register_dataset: empty name");
  if (is_builtin(name)) {
    return invalid_argument("register_dataset: '" + name + "' is a built-in dataset's name");
  }
  FLIGHT_RETURN_IF_ERROR(check_split(data.train, "dataset '" + name + "' train"));
  FLIGHT_RETURN_IF_ERROR(check_split(data.test, "dataset '" + name + "' test"));
  if (data.parts) {
    const int64_t n = data.train->size();
    for (size_t w = 0; w < data.parts->size(); ++w) {
      for (int64_t i : (*data.parts)[w]) {
        if (i < 0 || i >= n) {
          return out_of_range("dataset '" + name + "': index " + std::to_string(i) + " of worker " +
                              std::to_string(w) + " is outside the " + std::to_string(n) +
                              " training samples");
        }
      }
    }
  }
  MemoryDatasets& t = memory_datasets();
  std::lock_guard<std::mutex> lock(t.mu);
  t.by_name[name] = std::move(data);
  return Status::ok();
}

void unregister_dataset(const std::string& name) {
  MemoryDatasets& t = memory_datasets();
  std::lock_guard<std::mutex> lock(t.mu);
  t.by_name.erase(name);
}

StatusOr<std::vector<std::vector<int64_t>>> worker_partitions(const DatasetPair& data,
                                                              size_t n_workers,
                                                              const PartitionSpec& spec,
                                                              uint64_t seed) {
  if (spec.method != "given") return partition(data.train->labels, n_workers, spec, seed);
  if (!data.parts) {
    return failed_precondition(
        "partition method 'given' needs per-worker index lists, which only an in-memory "
        "dataset carries (Python: federated_fit or flight.run(data=...) with indices)");
  }
  if (data.parts->size() != n_workers) {
    return invalid_argument("partition 'given': " + std::to_string(data.parts->size()) +
                            " index lists for " + std::to_string(n_workers) + " workers");
  }
  return *data.parts;
}

}  // namespace flight::learning
