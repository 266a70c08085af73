// Datasets (real Fashion-MNIST files, idx gz/plain, synthetic) and partitioners.
#include <gtest/gtest.h>

#include <ATen/ops/bincount.h>
#include <ATen/ops/equal.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>

#include "flight/learning/dataset.h"
#include "flight/learning/partition.h"
#include "tests/support/process.h"

namespace flight::learning {
namespace {

const DatasetPair& fashion() {
  static const DatasetPair pair = [] {
    auto p = load_dataset(DataSpec{});
    FLIGHT_CHECK(p.is_ok(), p.status().to_string());
    return *p;
  }();
  return pair;
}

TEST(Dataset, LoadsRealFashionMnist) {
  const DatasetPair& d = fashion();
  ASSERT_EQ(d.train->size(), 60000);
  ASSERT_EQ(d.test->size(), 10000);
  EXPECT_EQ(d.train->images.sizes(), (at::IntArrayRef{60000, 1, 28, 28}));
  EXPECT_EQ(d.train->images.scalar_type(), at::kFloat);
  EXPECT_EQ(d.train->labels.scalar_type(), at::kLong);
  EXPECT_EQ(d.train->num_classes, 10);
  // Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
  at::Tensor counts = at::bincount(d.train->labels);
  for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(counts[c].item<int64_t>(), 6000);
  counts = at::bincount(d.test->labels);
  for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(counts[c].item<int64_t>(), 1000);
  // Normalised with the training set's statistics: mean ~0, std ~1.
  EXPECT_NEAR(d.train->images.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(d.train->images.std().item<double>(), 1.0, 0.01);
  // The first training image is an ankle boot (label 9) in the canonical files.
  EXPECT_EQ(d.train->labels[0].item<int64_t>(), 9);
}

TEST(Dataset, LoadedOncePerProcessAndShared) {
  auto a = load_dataset(DataSpec{});
  auto b = load_dataset(DataSpec{});
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->train.get(), b->train.get());
  EXPECT_EQ(a->train->images.data_ptr(), b->train->images.data_ptr());
  // The partition is not part of what is loaded.
  DataSpec other;
  other.partition.method = "shards";
  auto c = load_dataset(other);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->train.get(), a->train.get());
}

DataSpec synthetic(uint64_t seed) {
  DataSpec spec;
  spec.dataset = "synthetic";
  spec.synthetic_samples = 100;
  spec.synthetic_test_samples = 20;
  spec.synthetic_seed = seed;
  return spec;
}

// The cache is bounded by bytes: datasets no one holds are dropped least
// recently used first; a held one stays (and the holder's copy stays valid).
TEST(Dataset, CacheIsBoundedByBytesAndKeepsDatasetsInUse) {
  // What other tests of this process still hold stays (pinned); count from there.
  set_dataset_cache_bytes(0);
  const DatasetCacheStats base = dataset_cache_stats();
  // 120 images of 1x28x28 floats + 120 int64 labels.
  const uint64_t one = 120 * 28 * 28 * 4 + 120 * 8;
  set_dataset_cache_bytes(base.bytes + 3 * one);
  DatasetPair held;  // in use: never evicted
  {
    auto first = load_dataset(synthetic(1));
    ASSERT_TRUE(first.is_ok()) << first.status();
    EXPECT_EQ(dataset_bytes(*first), one);
    held = *first;
  }
  const DatasetCacheStats start = dataset_cache_stats();
  EXPECT_EQ(start.capacity, base.bytes + 3 * one);
  EXPECT_EQ(start.bytes, base.bytes + one);
  for (uint64_t seed = 2; seed <= 20; ++seed) {
    ASSERT_TRUE(load_dataset(synthetic(seed)).is_ok());
    DatasetCacheStats st = dataset_cache_stats();
    EXPECT_LE(st.bytes, base.bytes + 3 * one) << "after seed " << seed;
    EXPECT_LE(st.entries, base.entries + 3);
  }
  EXPECT_EQ(dataset_cache_stats().evictions - start.evictions, 17u);  // 20 loaded, 3 kept
  // The held one is still the cached one (pinned); seed 2, unheld, was dropped
  // and is read again (a new tensor).
  {
    auto again = load_dataset(synthetic(1));
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->train.get(), held.train.get());
    EXPECT_TRUE(held.train->images.defined());
  }
  const uint64_t evictions = dataset_cache_stats().evictions;
  ASSERT_TRUE(load_dataset(synthetic(2)).is_ok());
  EXPECT_EQ(dataset_cache_stats().evictions, evictions + 1);  // a miss: read again, one out

  // Shrinking evicts at once, down to what is in use.
  set_dataset_cache_bytes(0);
  EXPECT_EQ(dataset_cache_stats().bytes, base.bytes + one);  // `held` (and the others')
  EXPECT_EQ(dataset_cache_stats().entries, base.entries + 1);
  held = DatasetPair{};
  set_dataset_cache_bytes(0);
  EXPECT_EQ(dataset_cache_stats().entries, base.entries);
  set_dataset_cache_bytes(kDefaultDatasetCacheBytes);
}

// Writes an idx file: images [n, 2, 3] or labels [n]; gzipped when gz.
void write_idx(const std::string& path, bool images, const std::vector<uint8_t>& data, bool gz,
               size_t truncate_by = 0) {
  std::vector<uint8_t> bytes = {0, 0, 8, static_cast<uint8_t>(images ? 3 : 1)};
  auto be = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<uint8_t>(v >> s));
  };
  uint32_t n = static_cast<uint32_t>(images ? data.size() / 6 : data.size());
  be(n);
  if (images) {
    be(2);
    be(3);
  }
  bytes.insert(bytes.end(), data.begin(), data.end());
  bytes.resize(bytes.size() - truncate_by);
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
}

TEST(Dataset, ReadsIdxFilesGzippedOrNot) {
  flight::testing::TempDir dir;
  std::vector<uint8_t> pixels(4 * 6);
  std::iota(pixels.begin(), pixels.end(), 0);
  write_idx(dir.file("plain"), true, pixels, false);
  write_idx(dir.file("packed.gz"), true, pixels, true);
  auto a = read_idx_file(dir.file("plain"));
  auto b = read_idx_file(dir.file("packed.gz"));
  ASSERT_TRUE(a.is_ok()) << a.status();
  ASSERT_TRUE(b.is_ok()) << b.status();
  EXPECT_EQ(a->sizes(), (at::IntArrayRef{4, 2, 3}));
  EXPECT_TRUE(at::equal(*a, *b));
  EXPECT_EQ((*a)[3][1][2].item<int64_t>(), 23);

  write_idx(dir.file("short"), true, pixels, false, /*truncate_by=*/5);
  auto s = read_idx_file(dir.file("short"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("short"), std::string::npos) << s.status();

  std::ofstream(dir.file("text")) << "hello world, not idx";
  auto t = read_idx_file(dir.file("text"));
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("magic"), std::string::npos) << t.status();
}

TEST(Dataset, PlainIdxDirectoryLoadsAsMnist) {
  flight::testing::TempDir dir;
  std::vector<uint8_t> pixels(5 * 6, 255), labels = {0, 1, 2, 3, 4};
  for (const char* split : {"train", "t10k"}) {
    write_idx(dir.file(std::string(split) + "-images-idx3-ubyte"), true, pixels, false);
    write_idx(dir.file(std::string(split) + "-labels-idx1-ubyte"), false, labels, true);
  }
  // Rename the labels to .gz so one split mixes plain and gzipped files.
  std::rename(dir.file("train-labels-idx1-ubyte").c_str(),
              dir.file("train-labels-idx1-ubyte.gz").c_str());
  DataSpec spec;
  spec.dataset = "mnist";
  spec.root = dir.path();
  auto d = read_dataset(spec);
  ASSERT_TRUE(d.is_ok()) << d.status();
  EXPECT_EQ(d->train->images.sizes(), (at::IntArrayRef{5, 1, 2, 3}));
  EXPECT_EQ(d->train->labels[4].item<int64_t>(), 4);
  // MNIST normalisation: (1 - 0.1307) / 0.3081.
  EXPECT_NEAR(d->train->images[0][0][0][0].item<double>(), (1 - 0.1307) / 0.3081, 1e-5);
}

TEST(Dataset, MissingFileIsNamed) {
  flight::testing::TempDir dir;
  DataSpec spec;
  spec.root = dir.path();
  auto d = load_dataset(spec);
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find(dir.path() + "/train-images-idx3-ubyte.gz"),
            std::string::npos)
      << d.status();

  // Images present, test labels missing: the error names that file.
  std::vector<uint8_t> pixels(6), labels = {1};
  for (const char* split : {"train", "t10k"}) {
    write_idx(dir.file(std::string(split) + "-images-idx3-ubyte.gz"), true, pixels, true);
  }
  write_idx(dir.file("train-labels-idx1-ubyte.gz"), false, labels, true);
  d = load_dataset(spec);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("t10k-labels-idx1-ubyte"), std::string::npos) << d.status();
  // Errors are not cached: once the file exists, loading works.
  write_idx(dir.file("t10k-labels-idx1-ubyte.gz"), false, labels, true);
  d = load_dataset(spec);
  ASSERT_TRUE(d.is_ok()) << d.status();
  EXPECT_EQ(d->test->size(), 1);
}

TEST(Dataset, SyntheticIsSeededAndShaped) {
  DataSpec spec;
  spec.dataset = "synthetic";
  spec.synthetic_samples = 500;
  spec.synthetic_test_samples = 100;
  spec.synthetic_classes = 5;
  auto a = read_dataset(spec);
  auto b = read_dataset(spec);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->train->images.sizes(), (at::IntArrayRef{500, 1, 28, 28}));
  EXPECT_EQ(a->test->size(), 100);
  EXPECT_EQ(a->train->num_classes, 5);
  EXPECT_TRUE(at::equal(a->train->images, b->train->images));
  EXPECT_TRUE(at::equal(a->train->labels, b->train->labels));
  EXPECT_LT(a->train->labels.max().item<int64_t>(), 5);
  spec.synthetic_seed = 1;
  auto c = read_dataset(spec);
  EXPECT_FALSE(at::equal(a->train->images, c->train->images));
}

TEST(Dataset, SpecJsonRoundTripAndErrors) {
  auto spec = DataSpec::from_json(
      {{"dataset", "synthetic"},
       {"synthetic_samples", 100},
       {"partition", {{"method", "dirichlet"}, {"alpha", 0.3}, {"samples_alpha", 2.0}}}});
  ASSERT_TRUE(spec.is_ok()) << spec.status();
  EXPECT_EQ(spec->partition.method, "dirichlet");
  EXPECT_DOUBLE_EQ(spec->partition.alpha, 0.3);
  auto again = DataSpec::from_json(spec->to_json());
  ASSERT_TRUE(again.is_ok()) << again.status();
  EXPECT_EQ(again->to_json(), spec->to_json());

  auto typo = DataSpec::from_json({{"dataset", "fashion-mnist"}});
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("did you mean 'fashion_mnist'"), std::string::npos)
      << typo.status();
  auto key = DataSpec::from_json({{"roots", "/x"}});
  ASSERT_FALSE(key.is_ok());
  EXPECT_NE(key.status().message().find("'roots'"), std::string::npos);
  auto type = DataSpec::from_json({{"synthetic_samples", "many"}});
  ASSERT_FALSE(type.is_ok());
  EXPECT_NE(type.status().message().find("data.synthetic_samples"), std::string::npos);
  auto part = DataSpec::from_json({{"partition", {{"method", "dirichlet"}, {"alpha", -1}}}});
  ASSERT_FALSE(part.is_ok());
  EXPECT_NE(part.status().message().find("alpha"), std::string::npos);
}

// ---- partitioners

using Parts = std::vector<std::vector<int64_t>>;

Parts must_partition(const at::Tensor& labels, size_t n, const PartitionSpec& spec, uint64_t seed) {
  auto p = partition(labels, n, spec, seed);
  EXPECT_TRUE(p.is_ok()) << p.status();
  return p.is_ok() ? *p : Parts{};
}

// Every index in range and used at most once; returns how many were used.
size_t check_disjoint(const Parts& parts, int64_t n) {
  std::vector<bool> used(static_cast<size_t>(n), false);
  size_t total = 0;
  for (const auto& p : parts) {
    for (int64_t i : p) {
      EXPECT_TRUE(i >= 0 && i < n) << i;
      if (i < 0 || i >= n) continue;
      EXPECT_FALSE(used[i]) << "index " << i << " used twice";
      used[i] = true;
      ++total;
    }
  }
  return total;
}

// Share of each worker's samples in its `top` most frequent labels.
std::vector<double> top_share(const std::vector<std::vector<int64_t>>& hist, size_t top) {
  std::vector<double> out;
  for (auto h : hist) {
    int64_t n = std::accumulate(h.begin(), h.end(), int64_t{0});
    std::sort(h.rbegin(), h.rend());
    int64_t t = std::accumulate(h.begin(), h.begin() + top, int64_t{0});
    out.push_back(n ? static_cast<double>(t) / n : 0.0);
  }
  return out;
}

TEST(Partition, IidSizesDisjointDeterministic) {
  const at::Tensor& labels = fashion().train->labels;
  PartitionSpec spec;
  Parts a = must_partition(labels, 7, spec, 42);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(check_disjoint(a, 60000), 60000u);
  for (const auto& p : a) EXPECT_TRUE(p.size() == 8571 || p.size() == 8572) << p.size();
  EXPECT_EQ(must_partition(labels, 7, spec, 42), a);
  EXPECT_NE(must_partition(labels, 7, spec, 43), a);
}

TEST(Partition, SamplesAlphaSkewsSizes) {
  const at::Tensor& labels = fashion().train->labels;
  for (const char* method : {"iid", "dirichlet"}) {
    PartitionSpec spec;
    spec.method = method;
    spec.samples_alpha = 0.5;
    Parts p = must_partition(labels, 50, spec, 1);
    EXPECT_EQ(check_disjoint(p, 60000), 60000u) << method;
    auto [mn, mx] = std::minmax_element(
        p.begin(), p.end(), [](const auto& x, const auto& y) { return x.size() < y.size(); });
    EXPECT_GE(mn->size(), 1u) << method;
    // Equal sizes would be 1,200 each; Dirichlet(0.5) spreads them widely.
    EXPECT_GT(mx->size(), 3000u) << method;
    EXPECT_LT(mn->size(), 300u) << method;
  }
}

TEST(Partition, DirichletAlphaControlsLabelSkew) {
  const at::Tensor& labels = fashion().train->labels;
  PartitionSpec spec;
  spec.method = "dirichlet";

  // alpha 1000 ~ iid: every worker's labels within a few percent of 10% each.
  spec.alpha = 1000;
  Parts iid = must_partition(labels, 20, spec, 3);
  EXPECT_EQ(check_disjoint(iid, 60000), 60000u);
  for (const auto& h : label_histograms(labels, iid, 10)) {
    for (int64_t c : h) EXPECT_NEAR(static_cast<double>(c) / 3000, 0.1, 0.025);
  }

  // alpha 0.1: most workers are dominated by one or two labels.
  spec.alpha = 0.1;
  Parts skewed = must_partition(labels, 100, spec, 3);
  EXPECT_EQ(check_disjoint(skewed, 60000), 60000u);
  for (const auto& p : skewed) EXPECT_EQ(p.size(), 600u);
  std::vector<double> share = top_share(label_histograms(labels, skewed, 10), 2);
  size_t dominated = std::count_if(share.begin(), share.end(), [](double s) { return s >= 0.8; });
  EXPECT_GE(dominated, 60u) << "workers whose top-2 labels hold >= 80% of their samples";
  // For contrast, the iid split has no such worker.
  std::vector<double> iid_share = top_share(label_histograms(labels, iid, 10), 2);
  EXPECT_LT(*std::max_element(iid_share.begin(), iid_share.end()), 0.3);

  EXPECT_EQ(must_partition(labels, 100, spec, 3), skewed);
  EXPECT_NE(must_partition(labels, 100, spec, 4), skewed);
}

TEST(Partition, ShardsGiveFewLabelsPerWorker) {
  const at::Tensor& labels = fashion().train->labels;
  PartitionSpec spec;
  spec.method = "shards";
  spec.shards_per_worker = 2;
  Parts p = must_partition(labels, 100, spec, 9);
  EXPECT_EQ(check_disjoint(p, 60000), 60000u);
  // 200 shards of 300 label-sorted samples; 6,000 per label means no shard
  // straddles two labels, so a worker sees at most 2 labels.
  for (const auto& h : label_histograms(labels, p, 10)) {
    EXPECT_EQ(std::accumulate(h.begin(), h.end(), int64_t{0}), 600);
    EXPECT_LE(std::count_if(h.begin(), h.end(), [](int64_t c) { return c > 0; }), 2);
  }
  EXPECT_EQ(must_partition(labels, 100, spec, 9), p);
}

TEST(Partition, ScalesToThousandsOfWorkers) {
  const at::Tensor& labels = fashion().train->labels;
  PartitionSpec spec;
  spec.method = "dirichlet";
  spec.alpha = 0.5;
  Parts p = must_partition(labels, 5000, spec, 1);
  EXPECT_EQ(check_disjoint(p, 60000), 60000u);
  for (const auto& part : p) EXPECT_EQ(part.size(), 12u);
}

TEST(Partition, BadInputIsAnError) {
  const at::Tensor& labels = fashion().train->labels;
  PartitionSpec spec;
  EXPECT_FALSE(partition(labels, 0, spec, 0).is_ok());
  EXPECT_FALSE(partition(labels.to(at::kFloat), 3, spec, 0).is_ok());
  spec.method = "shards";
  spec.shards_per_worker = 100;
  auto too_many = partition(labels, 1000, spec, 0);
  ASSERT_FALSE(too_many.is_ok());
  EXPECT_NE(too_many.status().message().find("100000 shards"), std::string::npos)
      << too_many.status();
  auto typo = PartitionSpec::from_json({{"method", "dirichlett"}});
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("did you mean 'dirichlet'"), std::string::npos);
  auto key = PartitionSpec::from_json({{"method", "iid"}, {"aplha", 1}});
  ASSERT_FALSE(key.is_ok());
  EXPECT_NE(key.status().message().find("'aplha'"), std::string::npos);
  auto bare = PartitionSpec::from_json("shards");
  ASSERT_TRUE(bare.is_ok());
  EXPECT_EQ(bare->method, "shards");
}

}  // namespace
}  // namespace flight::learning
