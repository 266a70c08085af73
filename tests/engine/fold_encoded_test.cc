// Decode-while-folding (issue 16 §3): an aggregating node's ChildFold hands a
// linear strategy each child's checked encoded bytes, and the weighted mean
// dequantises them inside the fold. Checked here against decode-then-fold
// (Store::get, then Aggregation::accumulate on the decoded ParamSet, in the
// same canonical order): the same bits for every encoding; a corrupt payload
// still fails its checksum, naming the child; and no decoded float copy per
// child is held while children wait in the window.
#include <gtest/gtest.h>
#include <malloc.h>

#include <ATen/Context.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include <cstring>
#include <fstream>
#include <random>

#include "aggregators/strategy.h"
#include "flight/base/process.h"
#include "flight/engine/child_fold.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using transport::Encoding;

std::unique_ptr<aggregators::Strategy> strategy(const std::string& name) {
  auto o = aggregators::StrategyOptions::from_json(nlohmann::json{{"name", name}});
  EXPECT_TRUE(o.is_ok()) << o.status();
  auto s = aggregators::make_strategy(*o);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return std::move(s).value();
}

std::unique_ptr<transport::Store> memory_store() {
  // No cache: decode-then-fold decodes every get, as a remote fetch does.
  transport::StoreOptions o;
  o.cache_bytes = 0;
  auto s = transport::Store::create(nlohmann::json{{"kind", "memory"}}, o);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return std::move(s).value();
}

// A model-shaped update: float32 tensors (one mostly zeros, so sparse keeps
// it sparse), a float64 tensor and an integer buffer, which travel raw.
ParamSet update(int seed, int64_t n) {
  at::manual_seed(seed);
  ParamSet p;
  p.add("w", at::randn({n}));
  at::Tensor s = at::randn({33, 17});
  p.add("sparse", at::where(at::rand({33, 17}).gt(0.9), s, at::zeros_like(s)));
  p.add("b", at::randn({10}).mul(1e-3));
  p.add("d", at::randn({7}, at::kDouble));
  p.add("count", at::randint(0, 100, {1}, at::kLong));
  return p;
}

transport::PutOptions encoded(Encoding e) {
  transport::PutOptions o;
  o.encoding.encoding = e;
  o.encoding.block_size = 64;
  o.encoding.topk_fraction = 0.1;
  o.encoding.seed = 7;
  return o;
}

std::vector<ChildUpdate> children(transport::Store& store, Encoding e, int k, int64_t n) {
  std::vector<ChildUpdate> out;
  for (int i = 0; i < k; ++i) {
    auto ref = store.put(update(100 + i, n), encoded(e));
    EXPECT_TRUE(ref.is_ok()) << ref.status();
    ChildUpdate c;
    c.node = "worker-" + std::to_string(i);
    c.update = *ref;
    c.owned = true;  // a real child: the fold reads its bytes in place, then evicts it
    c.weight = 10.0 + 3.7 * i;
    c.index = i;
    out.push_back(std::move(c));
  }
  return out;
}

// Through ChildFold (the engine's path), children arriving out of order.
StatusOr<aggregators::Weighted> child_fold(std::unique_ptr<aggregators::Aggregation> agg,
                                           transport::Store& store, std::vector<ChildUpdate> cs,
                                           size_t window) {
  ChildFold fold(std::move(agg), store, cs.size(), window);
  std::mt19937 rng(3);
  std::shuffle(cs.begin(), cs.end(), rng);
  for (auto& c : cs) FLIGHT_RETURN_IF_ERROR(fold.add({c}));
  if (!fold.complete()) return internal_error("fold incomplete");
  return fold.finalize();
}

// The reference: decode each child (Store::get), then fold the ParamSets.
aggregators::Weighted decode_then_fold(aggregators::Strategy& s, transport::Store& store,
                                       const std::vector<ChildUpdate>& cs) {
  auto agg = s.begin();
  for (const auto& c : cs) {
    auto p = store.get(c.update);
    EXPECT_TRUE(p.is_ok()) << p.status();
    EXPECT_TRUE(agg->accumulate(*p, c.weight).is_ok());
  }
  auto w = agg->finalize();
  EXPECT_TRUE(w.is_ok()) << w.status();
  return std::move(w).value();
}

void expect_bit_identical(const aggregators::Weighted& a, const aggregators::Weighted& b,
                          const std::string& what) {
  EXPECT_EQ(a.weight, b.weight) << what;
  ASSERT_EQ(a.params.size(), b.params.size()) << what;
  for (size_t i = 0; i < a.params.size(); ++i) {
    const at::Tensor x = a.params[i].tensor.contiguous(), y = b.params[i].tensor.contiguous();
    ASSERT_EQ(x.scalar_type(), y.scalar_type()) << what << " " << a.params[i].name;
    ASSERT_EQ(x.sizes(), y.sizes()) << what << " " << a.params[i].name;
    EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()), 0)
        << what << ": tensor '" << a.params[i].name << "' differs";
  }
}

class FoldEncoded : public ::testing::TestWithParam<Encoding> {};

TEST_P(FoldEncoded, BitIdenticalToDecodeThenFold) {
  const Encoding e = GetParam();
  auto store = memory_store();
  for (const std::string name : {"fedavg", "fedsgd", "fedadam"}) {
    auto s = strategy(name);
    ASSERT_TRUE(s->begin()->folds_encoded()) << name;
    // Windows 8 and 16 fold runs of 4 and 8 children in one pass.
    for (size_t window : {size_t{1}, size_t{3}, size_t{8}, size_t{16}}) {
      // Fresh children each time: the fold evicts what it owns.
      auto cs = children(*store, e, 6, 100003);  // not a multiple of the int8 block
      const aggregators::Weighted expected = decode_then_fold(*s, *store, cs);
      auto in_place = child_fold(s->begin(), *store, cs, window);
      ASSERT_TRUE(in_place.is_ok()) << in_place.status();
      expect_bit_identical(*in_place, expected,
                           std::string(transport::encoding_name(e)) + " " + name);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Encodings, FoldEncoded,
                         ::testing::Values(Encoding::kRaw, Encoding::kFp16, Encoding::kBf16,
                                           Encoding::kInt8, Encoding::kTopK, Encoding::kSparse,
                                           Encoding::kSparseVarint),
                         [](const auto& info) { return transport::encoding_name(info.param); });

TEST(FoldEncoded, RobustStrategiesStillDecode) {
  auto store = memory_store();
  auto cs = children(*store, Encoding::kInt8, 5, 4096);
  auto s = strategy("median");
  ASSERT_FALSE(s->begin()->folds_encoded());
  const aggregators::Weighted expected = decode_then_fold(*s, *store, cs);
  auto r = child_fold(s->begin(), *store, cs, 2);
  ASSERT_TRUE(r.is_ok()) << r.status();
  expect_bit_identical(*r, expected, "median");
}

// A flipped payload bit fails the codec checksum before anything is folded,
// and the error names the child.
TEST(FoldEncoded, CorruptPayloadIsCaughtNamingTheChild) {
  TempDir dir("fold-encoded");
  const nlohmann::json config{{"kind", "file"}, {"dir", dir.path()}};
  auto store = transport::Store::create(config);
  ASSERT_TRUE(store.is_ok()) << store.status();
  // The consumer reads the files (the producer's Store caches its raw puts,
  // as a consumer in another process would not).
  transport::StoreOptions no_cache;
  no_cache.cache_bytes = 0;
  auto consumer = transport::Store::create(config, no_cache);
  ASSERT_TRUE(consumer.is_ok()) << consumer.status();
  for (Encoding e : {Encoding::kInt8, Encoding::kFp16, Encoding::kRaw}) {
    for (size_t window : {size_t{2}, size_t{8}}) {  // one by one, and a run of 4
      auto cs = children(**store, e, 4, 5000);      // fresh: the fold evicts what it folded
      const std::string path = dir.path() + "/" + cs[2].update.key;
      {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(f.good()) << path;
        f.seekg(-100, std::ios::end);
        char byte = 0;
        f.read(&byte, 1);
        f.seekp(-100, std::ios::end);
        byte = static_cast<char>(byte ^ 0x10);
        f.write(&byte, 1);
      }
      auto r = child_fold(strategy("fedavg")->begin(), **consumer, cs, window);
      ASSERT_FALSE(r.is_ok()) << transport::encoding_name(e);
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status();
      EXPECT_NE(r.status().message().find("child worker-2"), std::string::npos) << r.status();
      EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status();
    }
  }
}

// Window 8: runs of 4. A run waits while the child after it has not reported,
// and is folded once it holds 4, reaches the last child or meets a skip.
TEST(FoldEncoded, RunsWaitUntilTheyCanNoLongerGrow) {
  auto store = memory_store();
  auto cs = children(*store, Encoding::kRaw, 7, 1000);
  ChildFold fold(strategy("fedavg")->begin(), *store, 7, 8);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fold.add({cs[i]}).is_ok());
  EXPECT_EQ(fold.folded(), 0u) << "a run of 3 may still grow";
  ASSERT_TRUE(fold.add({cs[3]}).is_ok());
  EXPECT_EQ(fold.folded(), 4u) << "a full run";
  ASSERT_TRUE(fold.add({cs[4]}).is_ok());
  EXPECT_EQ(fold.folded(), 4u);
  ASSERT_TRUE(fold.skip(5).is_ok());
  EXPECT_EQ(fold.folded(), 5u) << "a run that meets a skip";
  ASSERT_TRUE(fold.add({cs[6]}).is_ok());
  EXPECT_TRUE(fold.complete()) << "the last child ends its run";
  auto r = fold.finalize();
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->weight, cs[0].weight + cs[1].weight + cs[2].weight + cs[3].weight +
                                  cs[4].weight + cs[6].weight);
}

size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Children waiting in the window: a linear fold holds their encoded bytes
// only (already in the memory connector: nothing new), while a decoding fold
// (median) holds a float32 copy of each. Measured as heap growth while the
// first child is missing and the others are resolved.
TEST(FoldEncoded, NoDecodedCopyPerWaitingChild) {
  constexpr int kChildren = 5;
  constexpr int64_t kNumel = 1 << 22;  // 16 MiB as float32, ~4 MiB as int8
  const double float_bytes = 4.0 * kNumel;
  auto store = memory_store();
  auto growth = [&](const std::string& name) {
    auto cs = children(*store, Encoding::kInt8, kChildren, kNumel);  // the fold evicts them
    ChildFold fold(strategy(name)->begin(), *store, kChildren, kChildren);
    const size_t before = heap_in_use();
    for (int i = kChildren - 1; i >= 1; --i) EXPECT_TRUE(fold.add({cs[i]}).is_ok());
    EXPECT_EQ(fold.folded(), 0u);
    EXPECT_EQ(fold.peak_resolved(), static_cast<size_t>(kChildren - 1));
    const double grown = static_cast<double>(heap_in_use()) - static_cast<double>(before);
    EXPECT_TRUE(fold.add({cs[0]}).is_ok());
    EXPECT_TRUE(fold.complete());
    return grown / (kChildren - 1);
  };
  const double decoded = growth("median");
  const double in_place = growth("fedavg");
  EXPECT_GT(decoded, 0.9 * float_bytes) << "per waiting child, decoding fold";
  EXPECT_LT(in_place, 0.05 * float_bytes) << "per waiting child, in-place fold";
}

}  // namespace
}  // namespace flight::engine
