// Compressed update encodings in the ParamSet codec: error bounds per
// encoding, sizes, folding straight from the bytes, error feedback, and
// corruption of compressed payloads.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "flight/params/param_ops.h"
#include "transport/checksum.h"
#include "transport/codec.h"

namespace flight::transport {
namespace {

ParamSet update_like(int64_t n, uint64_t seed) {
  at::manual_seed(seed);
  ParamSet p;
  p.add("w", at::randn({n / 100, 100}) * 0.01);
  p.add("b", at::randn({n % 100 + 37}) * 0.5);
  p.add("steps", at::full({1}, 3, at::kLong));  // non-float: always raw
  return p;
}

EncodeOptions opts(Encoding e) {
  EncodeOptions o;
  o.encoding = e;
  o.seed = 42;
  return o;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(Compression, DenseEncodingsRoundTripWithinTheirPrecision) {
  const ParamSet p = update_like(20000, 1);
  auto raw = encode(p);
  ASSERT_TRUE(raw.is_ok());
  for (Encoding e : {Encoding::kFp16, Encoding::kBf16, Encoding::kInt8}) {
    auto bytes = encode(p, opts(e));
    ASSERT_TRUE(bytes.is_ok()) << bytes.status();
    auto back = decode(*bytes);
    ASSERT_TRUE(back.is_ok()) << back.status();
    ASSERT_EQ(back->size(), p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      const at::Tensor& x = p[i].tensor;
      const at::Tensor& y = (*back)[i].tensor;
      EXPECT_EQ(y.scalar_type(), x.scalar_type()) << encoding_name(e);
      EXPECT_EQ(y.sizes(), x.sizes());
      if (x.scalar_type() != at::kFloat) {
        EXPECT_TRUE(y.equal(x));
        continue;
      }
      const double amax = x.abs().max().item<double>();
      // fp16: 11-bit significand; bf16: 8-bit; int8: one step of the block scale.
      const double bound = e == Encoding::kFp16   ? amax * std::ldexp(1.0, -11)
                           : e == Encoding::kBf16 ? amax * std::ldexp(1.0, -8)
                                                  : amax / 127.0;
      EXPECT_LE(max_abs_diff(x, y), bound) << encoding_name(e) << " " << p[i].name;
    }
  }
  // Sizes: int8 is under a quarter of float32 plus a scale per block.
  auto int8 = encode(p, opts(Encoding::kInt8));
  EXPECT_LT(static_cast<double>((*int8)->size()), static_cast<double>((*raw)->size()) / 3.5);
}

TEST(Compression, Int8StochasticRoundingIsUnbiased) {
  // A constant block value between two int8 steps: nearest rounding is
  // biased, stochastic rounding averages to the value.
  ParamSet p;
  at::Tensor x = at::full({100000}, 0.3f);
  x[0] = 1.0f;  // block scale 1/127: 0.3 * 127 = 38.1 steps
  p.add("x", x);
  EncodeOptions o = opts(Encoding::kInt8);
  o.block_size = 100000;
  auto sr = decode(*encode(p, o));
  o.stochastic_rounding = false;
  auto nearest = decode(*encode(p, o));
  ASSERT_TRUE(sr.is_ok() && nearest.is_ok());
  const double mean_sr = (*sr)[0].tensor.slice(0, 1).mean().item<double>();
  const double mean_nearest = (*nearest)[0].tensor.slice(0, 1).mean().item<double>();
  EXPECT_NEAR(mean_nearest, 38.0 / 127, 1e-6);  // biased by 0.1 step
  EXPECT_NEAR(mean_sr, 0.3, 0.1 / 127 * 0.05);  // within 5 % of that bias
}

TEST(Compression, TopKKeepsTheLargestAndShrinksThirtyFold) {
  const ParamSet p = update_like(100000, 2);
  EncodeOptions o = opts(Encoding::kTopK);
  o.topk_fraction = 0.01;
  auto bytes = encode(p, o);
  ASSERT_TRUE(bytes.is_ok());
  auto raw = encode(p);
  EXPECT_GT(static_cast<double>((*raw)->size()) / (*bytes)->size(), 30.0);
  auto back = decode(*bytes);
  ASSERT_TRUE(back.is_ok());
  const at::Tensor x = p[0].tensor.flatten(), y = (*back)[0].tensor.flatten();
  const int64_t k = (y != 0).sum().item<int64_t>();
  EXPECT_EQ(k, 1000);
  // Every kept value is exact; every dropped one is no larger than the smallest kept.
  const at::Tensor kept = y != 0;
  EXPECT_TRUE(y.masked_select(kept).equal(x.masked_select(kept)));
  EXPECT_LE(x.masked_select(~kept).abs().max().item<float>(),
            x.masked_select(kept).abs().min().item<float>());
}

TEST(Compression, SparseIsLosslessAndFallsBackToRawWhenDense) {
  // A sum of a few top-k updates: 3 % nonzero, plus a dense tensor and an all-zero one.
  ParamSet p = update_like(100000, 7);
  const at::Tensor keep = at::rand({1000, 100}) < 0.03;
  p[0].tensor = p[0].tensor * keep;
  p.add("zero", at::zeros({50}));
  auto sparse = encode(p, opts(Encoding::kSparse));
  auto raw = encode(p);
  ASSERT_TRUE(sparse.is_ok() && raw.is_ok()) << sparse.status();
  auto back = decode(*sparse);
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_TRUE(back->equal(p));  // bit for bit, dense tensor included
  // 8 bytes per nonzero for "w" instead of 4 per element; "b" (dense) stays raw.
  const int64_t nnz = keep.sum().item<int64_t>();
  EXPECT_LT((*sparse)->size(), (*raw)->size() - 100000 * 4 + nnz * 8 + 1024);
  EXPECT_GT(static_cast<double>((*raw)->size()) / (*sparse)->size(), 5.0);
  // Folding straight from the payload equals decode-then-fold.
  ParamSet direct = zeros_like(p), folded = zeros_like(p);
  ASSERT_TRUE(accumulate_encoded(direct, *sparse, 0.5).is_ok());
  ASSERT_TRUE(add_scaled(folded, p, 0.5).is_ok());
  EXPECT_TRUE(direct.equal(folded));
  // A dense tensor in sparse form: raw, byte for byte the size of float32.
  ParamSet dense;
  dense.add("d", at::randn({1000}));
  auto d = encode(dense, opts(Encoding::kSparse));
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ((*d)->size(), (*encode(dense))->size());
}

TEST(Compression, SparseVarintIsLosslessAndSmallerThanSparse) {
  // A worker's 1 % top-k delta: nonzeros at random positions, plus a dense
  // tensor (raw), an all-zero one (k = 0) and one whose gaps need 1-3 byte varints.
  ParamSet p = update_like(100000, 8);
  p[0].tensor = p[0].tensor * (at::rand({1000, 100}) < 0.01);
  p.add("zero", at::zeros({50}));
  at::Tensor far = at::zeros({300000});
  for (int64_t i : {0, 1, 200, 70000, 299999}) far[i] = 0.5f + i;
  p.add("far", far);
  auto packed = encode(p, opts(Encoding::kSparseVarint));
  auto sparse = encode(p, opts(Encoding::kSparse));
  ASSERT_TRUE(packed.is_ok() && sparse.is_ok()) << packed.status();
  EXPECT_EQ(peek_header(ByteView(**packed))->version, kCodecVersionPacked);
  auto back = decode(*packed);
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_TRUE(back->equal(p));  // bit for bit
  // ~5 bytes a nonzero (1-byte gaps below 128, 2 bytes above) against sparse's 8.
  const int64_t nnz = (p[0].tensor != 0).sum().item<int64_t>();
  const int64_t raw_rest = (100000 % 100 + 37) * 4 + 8;  // "b" and "steps" stay raw
  EXPECT_LT(static_cast<int64_t>((*packed)->size()), nnz * 6 + raw_rest + 1024);
  EXPECT_LT(static_cast<double>((*packed)->size()), 0.8 * (*sparse)->size());
  // Folding straight from the payload equals decode-then-fold, bit for bit.
  ParamSet direct = zeros_like(p), folded = zeros_like(p);
  ASSERT_TRUE(accumulate_encoded(direct, *packed, 0.25).is_ok());
  ASSERT_TRUE(add_scaled(folded, p, 0.25).is_ok());
  EXPECT_TRUE(direct.equal(folded));
  // Version-2 sparse payloads (earlier builds) still decode.
  EXPECT_EQ(peek_header(ByteView(**sparse))->version, kCodecVersionCompressed);
  EXPECT_TRUE(decode(*sparse)->equal(p));
}

TEST(Compression, SparseVarintRejectsMalformedIndices) {
  // payload: u32 k, u32 index_bytes, varints, pad to 4, f32 values[k]
  auto payload = [](uint32_t k, std::vector<uint8_t> idx) {
    std::vector<uint8_t> b(8);
    const uint32_t ib = static_cast<uint32_t>(idx.size());
    std::memcpy(b.data(), &k, 4);
    std::memcpy(b.data() + 4, &ib, 4);
    b.insert(b.end(), idx.begin(), idx.end());
    b.resize(8 + (ib + 3) / 4 * 4 + 4 * k, 0);
    return b;
  };
  auto check = [](const std::vector<uint8_t>& b, uint64_t n) {
    return check_payload(Encoding::kSparseVarint, b.data(), b.size(), n);
  };
  EXPECT_TRUE(check(payload(2, {3, 0x81, 0x01}), 200).is_ok());  // indices 3 and 133
  EXPECT_EQ(check(payload(2, {3, 0x81, 0x01}), 133).code(), StatusCode::kDataLoss);  // range
  EXPECT_EQ(check(payload(2, {3, 0x81}), 200).code(), StatusCode::kDataLoss);        // cut varint
  EXPECT_EQ(check(payload(1, {3, 4}), 200).code(), StatusCode::kDataLoss);  // trailing byte
  EXPECT_EQ(check(payload(3, {0, 0}), 200).code(), StatusCode::kDataLoss);  // k too large
  std::vector<uint8_t> huge(11, 0xff);
  huge.back() = 0x01;
  EXPECT_EQ(check(payload(1, huge), 200).code(), StatusCode::kDataLoss);  // 11-byte varint
  auto short_payload = payload(1, {3});
  short_payload.pop_back();
  EXPECT_EQ(check(short_payload, 200).code(), StatusCode::kDataLoss);  // size mismatch
  EXPECT_TRUE(check(payload(0, {}), 200).is_ok());                     // all zero
}

TEST(Compression, AccumulateEncodedEqualsDecodeThenFold) {
  const ParamSet a = update_like(30000, 3), b = update_like(30000, 4);
  for (Encoding e :
       {Encoding::kRaw, Encoding::kFp16, Encoding::kBf16, Encoding::kInt8, Encoding::kTopK}) {
    ParamSet direct = zeros_like(a), via_decode = zeros_like(a);
    for (const auto* u : {&a, &b}) {
      auto bytes = encode(*u, opts(e));
      ASSERT_TRUE(bytes.is_ok());
      ASSERT_TRUE(accumulate_encoded(direct, *bytes, 2.5).is_ok()) << encoding_name(e);
      ASSERT_TRUE(add_scaled(via_decode, *decode(*bytes), 2.5).is_ok());
    }
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_LE(max_abs_diff(direct[i].tensor, via_decode[i].tensor), 1e-6)
          << encoding_name(e) << " " << a[i].name;
    }
    EXPECT_EQ(direct.find("steps")->item<int64_t>(), 3);  // max, as param_ops
  }
  // A mismatching accumulator is rejected before anything is added.
  ParamSet wrong;
  wrong.add("w", at::zeros({5}));
  EXPECT_EQ(accumulate_encoded(wrong, *encode(a, opts(Encoding::kInt8)), 1.0).code(),
            StatusCode::kInvalidArgument);
}

// A batch folds in one pass over acc with the bits of one call per update,
// whatever mix of dense and sparse encodings it holds, and adds nothing
// unless every encoding in it is valid.
TEST(Compression, BatchAccumulateEqualsOneByOne) {
  const std::vector<Encoding> mix = {Encoding::kRaw,    Encoding::kFp16, Encoding::kInt8,
                                     Encoding::kTopK,   Encoding::kRaw,  Encoding::kBf16,
                                     Encoding::kSparse, Encoding::kInt8};
  std::vector<Bytes> bytes;
  std::vector<double> w;
  for (size_t j = 0; j < mix.size(); ++j) {
    auto b = encode(update_like(70001, 10 + j), opts(mix[j]));  // odd size: partial chunks
    ASSERT_TRUE(b.is_ok()) << b.status();
    bytes.push_back(*b);
    w.push_back(0.3 + 1.7 * static_cast<double>(j));
  }
  for (bool assign : {false, true}) {
    const ParamSet start = update_like(70001, 99);
    ParamSet one = start.clone(), batched = start.clone();
    for (size_t j = 0; j < bytes.size(); ++j) {
      AccumulateOptions o;
      o.assign = assign && j == 0;
      ASSERT_TRUE(accumulate_encoded(one, bytes[j], w[j], o).is_ok());
    }
    std::vector<const Bytes*> batch;
    for (const auto& b : bytes) batch.push_back(&b);
    AccumulateOptions o;
    o.assign = assign;
    ASSERT_TRUE(accumulate_encoded(batched, batch, w, o).is_ok());
    for (size_t i = 0; i < one.size(); ++i) {
      const at::Tensor x = one[i].tensor, y = batched[i].tensor;
      ASSERT_EQ(x.nbytes(), y.nbytes());
      EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()), 0)
          << one[i].name << (assign ? " (assign)" : "");
    }
  }
  // One encoding of another model in the batch: nothing is added.
  ParamSet acc = zeros_like(update_like(70001, 1));
  auto other = encode(update_like(5000, 3));
  ASSERT_TRUE(other.is_ok());
  std::vector<const Bytes*> bad = {&bytes[0], &bytes[1], &*other};
  EXPECT_EQ(accumulate_encoded(acc, bad, {1.0, 1.0, 1.0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(acc[0].tensor.abs().sum().item<float>(), 0.f) << "nothing added";
}

TEST(Compression, ErrorFeedbackEventuallySendsEverything) {
  // A constant update under top-1 %: without feedback the same 1 % is sent
  // every round; with it, the running sum of what was sent tracks the running
  // sum of the updates within one round's worth of residual.
  ParamSet u;
  u.add("x", at::linspace(0.1, 1.0, 1000));
  EncodeOptions o = opts(Encoding::kTopK);
  o.topk_fraction = 0.01;
  ErrorFeedback ef;
  at::Tensor sent = at::zeros({1000});
  const int rounds = 300;
  for (int r = 0; r < rounds; ++r) {
    auto bytes = ef.encode(u, o);
    ASSERT_TRUE(bytes.is_ok());
    ParamSet acc;
    acc.add("x", sent);
    ASSERT_TRUE(accumulate_encoded(acc, *bytes, 1.0).is_ok());
  }
  const at::Tensor want = u[0].tensor * rounds;
  // sum sent + residual == sum of updates, exactly up to float rounding.
  EXPECT_LE(max_abs_diff(sent + ef.residual()[0].tensor, want), 1e-3);
  EXPECT_GT((sent > 0).sum().item<int64_t>(), 900);  // nearly every coordinate went out
}

TEST(Compression, CorruptCompressedPayloadsAreDataLoss) {
  const ParamSet p = update_like(5000, 5);
  for (Encoding e : {Encoding::kFp16, Encoding::kInt8, Encoding::kTopK, Encoding::kSparseVarint}) {
    auto bytes = encode(p, opts(e));
    ASSERT_TRUE(bytes.is_ok());
    const size_t n = (*bytes)->size();
    // Flip one bit at several places: the checksum always catches it.
    for (size_t pos : {size_t{70}, n / 2, n - 1}) {
      auto bad = *Buffer::copy_of((*bytes)->data(), n);
      bad->data()[pos] ^= 0x10;
      auto r = decode(Bytes(bad));
      ASSERT_FALSE(r.is_ok()) << encoding_name(e) << " at " << pos;
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
      ParamSet acc = zeros_like(p);
      EXPECT_EQ(accumulate_encoded(acc, Bytes(bad), 1.0).code(), StatusCode::kDataLoss);
      EXPECT_EQ(acc[0].tensor.abs().sum().item<float>(), 0.f) << "nothing added";
    }
    // Truncation.
    EXPECT_EQ(decode(*Buffer::copy_of((*bytes)->data(), n - 8)).status().code(),
              StatusCode::kDataLoss);
  }
  EncodeOptions bad = opts(Encoding::kTopK);
  bad.topk_fraction = 0;
  EXPECT_EQ(encode(p, bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_encoding("int4").status().code(), StatusCode::kInvalidArgument);
}

TEST(Compression, UncompressedEncodingsStayVersionOne) {
  const ParamSet p = update_like(1000, 6);
  auto plain = encode(p), raw = encode(p, opts(Encoding::kRaw)),
       fp16 = encode(p, opts(Encoding::kFp16));
  ASSERT_TRUE(plain.is_ok() && raw.is_ok() && fp16.is_ok());
  EXPECT_EQ((*plain)->size(), (*raw)->size());
  EXPECT_EQ(std::memcmp((*plain)->data(), (*raw)->data(), (*raw)->size()), 0);
  EXPECT_EQ(peek_header(ByteView(**plain))->version, kCodecVersion);
  EXPECT_EQ(peek_header(ByteView(**fp16))->version, kCodecVersionCompressed);
}

}  // namespace
}  // namespace flight::transport
