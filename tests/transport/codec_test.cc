// The ParamSet codec and its checksum: round trips for every dtype and shape,
// zero-copy decoding, and corruption / truncation / absurd headers at every
// position class (preamble, entry table with names, padding, tensor data).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

#include "flight/bench/sample_params.h"
#include "transport/checksum.h"
#include "transport/codec.h"

namespace flight::transport {
namespace {

TEST(Checksum, KnownVectorAndBothPathsAgree) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c_extend_portable(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::mt19937 gen(7);
  std::vector<uint8_t> data(200000);
  for (auto& b : data) b = static_cast<uint8_t>(gen());
  // Lengths around the 8-byte words and the 3-stream block sizes (768, 24576).
  for (size_t n : {1, 7, 8, 9, 255, 767, 768, 769, 8191, 24575, 24576, 24577, 100003, 199990}) {
    for (size_t off : {0, 1, 5}) {
      uint32_t whole = crc32c(data.data() + off, n);
      EXPECT_EQ(whole, crc32c_extend_portable(0, data.data() + off, n)) << n << "+" << off;
      uint32_t split =
          crc32c_extend(crc32c(data.data() + off, n / 3), data.data() + off + n / 3, n - n / 3);
      EXPECT_EQ(whole, split) << n << "+" << off;
    }
  }
  // The fused copy: same checksum, exact copy, streamed or not, any alignment.
  for (size_t n : {0, 5, 64, 769, 24577, 100003}) {
    for (size_t off : {0, 3}) {
      for (bool stream : {false, true}) {
        std::vector<uint8_t> dst(n + 16, 0xee);
        uint32_t c = crc32c_copy(0x77, dst.data() + off, data.data() + 1, n, stream);
        EXPECT_EQ(c, crc32c_extend_portable(0x77, data.data() + 1, n)) << n << " " << stream;
        EXPECT_EQ(std::memcmp(dst.data() + off, data.data() + 1, n), 0) << n << " " << stream;
        EXPECT_EQ(dst[off + n], 0xee) << "no write past the end";
      }
    }
  }
  std::printf("crc32c hardware path: %s\n", crc32c_hardware() ? "yes" : "no");
}

// Every implementation against the table (the pre-folding reference) on random
// buffers: random lengths across the clmul thresholds (256 bytes, 128-byte
// blocks, 16-byte tail), random alignments, random running CRCs, copy forms.
TEST(Checksum, EveryImplementationIsBitIdenticalOnRandomBuffers) {
  EXPECT_EQ(crc32c_extend_using(Crc32cImpl::kClmulFold, 0, "123456789", 9), 0xE3069283u);
  // RFC 3720 (iSCSI) B.4 vectors: 32 zero bytes, 32 0xff bytes, 0..31 ascending.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), inc(32);
  for (int i = 0; i < 32; ++i) inc[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  std::vector<uint8_t> big(4096);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 + 3);
  for (Crc32cImpl impl : {Crc32cImpl::kPortable, Crc32cImpl::kCrc32Streams, Crc32cImpl::kClmulFold,
                          Crc32cImpl::kHybrid}) {
    EXPECT_EQ(crc32c_extend_using(impl, 0, zeros.data(), 32), 0x8A9136AAu);
    EXPECT_EQ(crc32c_extend_using(impl, 0, ones.data(), 32), 0x62A8AB43u);
    EXPECT_EQ(crc32c_extend_using(impl, 0, inc.data(), 32), 0x46DD794Eu);
    EXPECT_EQ(crc32c_extend_using(impl, 0, big.data(), big.size()),
              crc32c_extend_portable(0, big.data(), big.size()));
  }
  std::mt19937_64 gen(11);
  std::vector<uint8_t> data(3 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(gen());
  std::vector<uint8_t> dst(data.size() + 128);
  for (int iter = 0; iter < 400; ++iter) {
    const size_t n = iter < 200 ? static_cast<size_t>(iter) * 3 : gen() % (2 << 20);
    const size_t off = gen() % 64, dst_off = gen() % 64;
    const auto init = static_cast<uint32_t>(gen());
    const uint32_t want = crc32c_extend_portable(init, data.data() + off, n);
    for (Crc32cImpl impl :
         {Crc32cImpl::kCrc32Streams, Crc32cImpl::kClmulFold, Crc32cImpl::kHybrid}) {
      EXPECT_EQ(crc32c_extend_using(impl, init, data.data() + off, n), want)
          << "impl " << static_cast<int>(impl) << " n " << n << " off " << off;
      const bool stream = iter % 2 == 1;
      EXPECT_EQ(crc32c_copy_using(impl, init, dst.data() + dst_off, data.data() + off, n, stream),
                want)
          << "copy impl " << static_cast<int>(impl) << " n " << n;
      EXPECT_EQ(std::memcmp(dst.data() + dst_off, data.data() + off, n), 0) << n;
    }
  }
  std::printf("crc32c best: %d (clmul available: %s)\n", static_cast<int>(crc32c_best()),
              crc32c_available(Crc32cImpl::kClmulFold) ? "yes" : "no");
}

// Every alignment 0..63 of the source (and a different one of the copy's
// destination) with random lengths up to 100k and lengths at the hybrid's
// edges (4 KiB minimum, 160-byte steps, 8-byte tail): plain, chained at a
// random split (crc32c_extend), and fused with a copy, streamed or not. The
// hybrid joins its parts with x^n mod P computed at run time for each length,
// so every length checks those multipliers too.
TEST(Checksum, HybridMatchesTheTableAtEveryAlignment) {
  std::mt19937_64 gen(23);
  std::vector<uint8_t> data(100000 + 128);
  for (auto& b : data) b = static_cast<uint8_t>(gen());
  std::vector<uint8_t> dst(data.size() + 128);
  std::vector<size_t> edges = {0, 1, 7, 255, 256, 4095, 4096, 4097, 4256, 4263, 4264, 4415};
  for (size_t k = 26; k < 40; ++k) edges.push_back(k * 160 + k % 9);
  int cases = 0;
  for (size_t off = 0; off < 64; ++off) {
    std::vector<size_t> lengths = {edges[off % edges.size()], edges[(off * 7 + 3) % edges.size()]};
    for (int r = 0; r < 6; ++r) lengths.push_back(gen() % 100001);
    for (size_t n : lengths) {
      const auto init = static_cast<uint32_t>(gen());
      const uint8_t* src = data.data() + off;
      const uint32_t want = crc32c_extend_portable(init, src, n);
      const size_t cut = n == 0 ? 0 : gen() % (n + 1);
      for (Crc32cImpl impl :
           {Crc32cImpl::kCrc32Streams, Crc32cImpl::kClmulFold, Crc32cImpl::kHybrid}) {
        const int id = static_cast<int>(impl);
        ASSERT_EQ(crc32c_extend_using(impl, init, src, n), want)
            << "impl " << id << " n " << n << " off " << off;
        const uint32_t head = crc32c_extend_using(impl, init, src, cut);
        ASSERT_EQ(crc32c_extend_using(impl, head, src + cut, n - cut), want)
            << "chained impl " << id << " n " << n << " cut " << cut << " off " << off;
        for (bool stream : {false, true}) {
          const size_t dst_off = (off * 5 + (stream ? 32 : 0)) % 64;
          std::fill(dst.begin(), dst.end(), uint8_t{0xa5});
          ASSERT_EQ(crc32c_copy_using(impl, init, dst.data() + dst_off, src, n, stream), want)
              << "copy impl " << id << " n " << n << " off " << off << " stream " << stream;
          ASSERT_EQ(std::memcmp(dst.data() + dst_off, src, n), 0) << n;
          ASSERT_EQ(dst[dst_off + n], 0xa5) << "no write past the end, n " << n;
          if (dst_off > 0) {
            ASSERT_EQ(dst[dst_off - 1], 0xa5) << "no write before the start";
          }
        }
        ++cases;
      }
      // The dispatching entry points agree too.
      ASSERT_EQ(crc32c_extend(init, src, n), want);
      ASSERT_EQ(crc32c_extend(crc32c_extend(init, src, cut), src + cut, n - cut), want);
    }
  }
  EXPECT_EQ(cases, 64 * 8 * 3);
  EXPECT_EQ(crc32c_available(Crc32cImpl::kHybrid), crc32c_available(Crc32cImpl::kClmulFold));
}

ParamSet all_dtypes() {
  ParamSet p;
  p.add("f32", at::randn({3, 4}));
  p.add("f64", at::randn({5}, at::kDouble));
  p.add("f16", at::randn({2, 2, 2}).to(at::kHalf));
  p.add("bf16", at::randn({7}).to(at::kBFloat16));
  p.add("i8", at::arange(-5, 5, at::kChar));
  p.add("i16", at::arange(-300, 300, 7, at::kShort));
  p.add("i32", at::arange(100000, 100010, at::kInt));
  p.add("i64", at::arange(-(int64_t{1} << 40), -(int64_t{1} << 40) + 6, at::kLong));
  p.add("u8", at::arange(0, 256, at::kByte));
  p.add("bool", at::arange(9).remainder(2).eq(0));
  p.add("c64", at::randn({4}, at::kComplexFloat));
  p.add("c128", at::randn({2, 3}, at::kComplexDouble));
  p.add("c32", at::randn({3}, at::kComplexFloat).to(at::kComplexHalf));
  return p;
}

// Bitwise comparison that works for every dtype (at::equal lacks some kernels,
// e.g. complex32).
bool bitwise_equal(const ParamSet& a, const ParamSet& b) {
  if (!a.check_compatible(b).is_ok()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    at::Tensor x = a[i].tensor.contiguous();
    at::Tensor y = b[i].tensor.contiguous();
    if (x.nbytes() != y.nbytes()) return false;
    if (x.nbytes() && std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) != 0) return false;
  }
  return true;
}

TEST(Codec, RoundTripsEveryDtype) {
  ParamSet p = all_dtypes();
  auto bytes = encode(p);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status();
  EXPECT_EQ((*bytes)->size(), *encoded_size(p));
  auto back = decode(*bytes);
  ASSERT_TRUE(back.is_ok()) << back.status();
  ASSERT_EQ(back->size(), p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ((*back)[i].name, p[i].name);
    EXPECT_EQ((*back)[i].tensor.scalar_type(), p[i].tensor.scalar_type()) << p[i].name;
    EXPECT_EQ((*back)[i].tensor.sizes(), p[i].tensor.sizes()) << p[i].name;
  }
  EXPECT_TRUE(bitwise_equal(p, *back));
}

TEST(Codec, EmptyZeroDimAndEmptySets) {
  ParamSet p;
  p.add("scalar", at::scalar_tensor(3.5, at::kDouble));
  p.add("empty", at::zeros({0}));
  p.add("empty3d", at::zeros({3, 0, 2}, at::kLong));
  p.add("after", at::arange(5, at::kFloat));
  auto back = decode(*encode(p));
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_TRUE(p.equal(*back));
  EXPECT_EQ((*back)[0].tensor.dim(), 0);
  EXPECT_EQ((*back)[0].tensor.item<double>(), 3.5);
  EXPECT_EQ((*back)[2].tensor.sizes(), at::IntArrayRef({3, 0, 2}));

  ParamSet none;
  auto b = encode(none);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ((*b)->size(), kCodecPreambleBytes);
  auto nb = decode(*b);
  ASSERT_TRUE(nb.is_ok()) << nb.status();
  EXPECT_TRUE(nb->empty());
}

TEST(Codec, NonContiguousInputIsEncodedInLogicalOrder) {
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  ParamSet p;
  p.add("transposed", base.t());
  p.add("strided", base.slice(1, 0, 6, 2));
  p.add("expanded", at::arange(3, at::kInt).unsqueeze(0).expand({4, 3}));
  ASSERT_FALSE(p[0].tensor.is_contiguous());
  auto back = decode(*encode(p));
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_TRUE(p.equal(*back));
  for (const auto& e : *back) EXPECT_TRUE(e.tensor.is_contiguous()) << e.name;
}

TEST(Codec, DecodeIsZeroCopyAlignedAndKeepsTheBufferAlive) {
  ParamSet p = bench::sample_params(1 << 20, 3);
  std::weak_ptr<const Buffer> watch;
  ParamSet back;
  {
    Bytes bytes = *encode(p);
    watch = bytes;
    auto d = decode(bytes);
    ASSERT_TRUE(d.is_ok()) << d.status();
    back = std::move(*d);
    auto lo = reinterpret_cast<uintptr_t>(bytes->data());
    for (const auto& e : back) {
      auto ptr = reinterpret_cast<uintptr_t>(e.tensor.data_ptr());
      EXPECT_GE(ptr, lo) << e.name << " points into the received buffer";
      EXPECT_LE(ptr + e.tensor.nbytes(), lo + bytes->size()) << e.name;
      EXPECT_EQ(ptr % 64, 0u) << e.name;
    }
  }
  EXPECT_FALSE(watch.expired()) << "the tensors keep the buffer";
  EXPECT_TRUE(p.equal(back));
  back = ParamSet();
  EXPECT_TRUE(watch.expired()) << "and release it with the last tensor";
}

TEST(Codec, RejectsWhatItCannotEncode) {
  ParamSet p;
  p.add("q", at::quantize_per_tensor(at::ones({2}), 0.1, 0, at::kQInt8));
  auto b = encode(p);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("'q'"), std::string::npos) << b.status();
}

// --- corruption ------------------------------------------------------------

Bytes copy(const Buffer& b, size_t n) { return *Buffer::copy_of(b.data(), n); }

// Recomputes the checksum after a deliberate edit, so the structural checks
// (not the checksum) must catch the lie.
void reseal(Buffer& b) {
  uint8_t* d = b.data();
  uint32_t crc = crc32c_extend(crc32c(d, 40), d + 44, b.size() - 44);
  std::memcpy(d + 40, &crc, 4);
}

void expect_rejected(const Bytes& bytes, const std::string& what) {
  auto r = decode(bytes);
  ASSERT_FALSE(r.is_ok()) << what;
  StatusCode c = r.status().code();
  EXPECT_TRUE(c == StatusCode::kDataLoss || c == StatusCode::kInvalidArgument)
      << what << ": " << r.status();
  EXPECT_FALSE(r.status().message().empty());
}

struct Sample {
  ParamSet params;
  Bytes bytes;
  CodecHeader header;
};

Sample sample() {
  Sample s;
  s.params.add("conv1.weight", at::randn({4, 3, 3, 3}));
  s.params.add("conv1.bias", at::randn({4}));
  s.params.add("fc.weight", at::randn({10, 7}, at::kDouble));
  s.bytes = *encode(s.params);
  s.header = *peek_header(ByteView(*s.bytes));
  return s;
}

TEST(CodecCorruption, EveryFlippedHeaderAndTableByteIsCaught) {
  Sample s = sample();
  // Every byte of the preamble, the entry table (names, dtypes, shapes,
  // offsets) and the alignment padding before the data.
  for (size_t pos = 0; pos < s.header.data_offset; ++pos) {
    Bytes bad = copy(*s.bytes, s.bytes->size());
    const_cast<uint8_t*>(bad->data())[pos] ^= 0x5a;
    expect_rejected(bad, "flip at header byte " + std::to_string(pos));
  }
}

TEST(CodecCorruption, FlippedDataAndPaddingBytesAreCaught) {
  Sample s = sample();
  std::mt19937 gen(1);
  std::set<size_t> positions = {s.header.data_offset, s.bytes->size() - 1};
  for (int i = 0; i < 300; ++i) {
    positions.insert(s.header.data_offset + gen() % (s.bytes->size() - s.header.data_offset));
  }
  for (size_t pos : positions) {
    for (uint8_t mask : {0x01, 0x80}) {
      Bytes bad = copy(*s.bytes, s.bytes->size());
      const_cast<uint8_t*>(bad->data())[pos] ^= mask;
      expect_rejected(bad, "flip at data byte " + std::to_string(pos));
    }
  }
}

TEST(CodecCorruption, TruncationAnywhereIsDataLoss) {
  Sample s = sample();
  std::vector<size_t> cuts;
  for (size_t n = 0; n < s.header.data_offset + 8; ++n) cuts.push_back(n);  // preamble, table
  for (size_t n = s.header.data_offset + 8; n < s.bytes->size(); n += 97) cuts.push_back(n);
  cuts.push_back(s.bytes->size() - 1);
  for (size_t n : cuts) {
    auto r = decode(copy(*s.bytes, n));
    ASSERT_FALSE(r.is_ok()) << "cut at " << n;
    if (n >= 8) {
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "cut at " << n << ": " << r.status();
    }
  }
  // Trailing junk is not silently ignored either.
  auto longer = *Buffer::allocate(s.bytes->size() + 3);
  std::memcpy(longer->data(), s.bytes->data(), s.bytes->size());
  auto r = decode(Bytes(longer));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("trailing"), std::string::npos) << r.status();
}

TEST(CodecCorruption, MagicVersionAndNullAreInvalidArgument) {
  Sample s = sample();
  Bytes bad_magic = copy(*s.bytes, s.bytes->size());
  const_cast<uint8_t*>(bad_magic->data())[0] = 'X';
  auto r1 = decode(bad_magic);
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r1.status().message().find("magic"), std::string::npos);

  auto newer = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  uint32_t v99 = 99;
  std::memcpy(newer->data() + 8, &v99, 4);
  reseal(*newer);
  auto r2 = decode(Bytes(newer));
  EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r2.status().message().find("version 99"), std::string::npos) << r2.status();

  EXPECT_FALSE(decode(nullptr).is_ok());
}

TEST(CodecCorruption, AbsurdSizesNeverAllocate) {
  Sample s = sample();
  // A header claiming 2^60 bytes: rejected against the real size, nothing allocated.
  auto huge = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  uint64_t big = uint64_t{1} << 60;
  std::memcpy(huge->data() + 16, &big, 8);
  auto r = decode(Bytes(huge));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("1152921504606846976"), std::string::npos) << r.status();

  // Correctly sealed lies in the table: a shape of 2^40 x 2^40, a dimension
  // count of 200, an entry count of 2^31. The structural checks catch each.
  const size_t rec = kCodecPreambleBytes;
  auto shape = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  int64_t dim = int64_t{1} << 40;
  std::memcpy(shape->data() + rec + 24, &dim, 8);
  std::memcpy(shape->data() + rec + 32, &dim, 8);
  reseal(*shape);
  auto r2 = decode(Bytes(shape));
  ASSERT_FALSE(r2.is_ok());
  EXPECT_NE(r2.status().message().find("conv1.weight"), std::string::npos) << r2.status();

  auto ndim = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  ndim->data()[rec + 5] = 200;
  reseal(*ndim);
  EXPECT_FALSE(decode(Bytes(ndim)).is_ok());

  auto count = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  uint32_t many = 1u << 31;
  std::memcpy(count->data() + 12, &many, 4);
  reseal(*count);
  auto r3 = decode(Bytes(count));
  ASSERT_FALSE(r3.is_ok());
  EXPECT_EQ(r3.status().code(), StatusCode::kDataLoss);

  // Overlapping data: the second tensor pointing back into the first.
  auto overlap = *Buffer::copy_of(s.bytes->data(), s.bytes->size());
  size_t rec2 = rec + ((24 + 8 * 4 + std::strlen("conv1.weight") + 7) / 8) * 8;
  uint64_t first_off;
  std::memcpy(&first_off, overlap->data() + rec + 8, 8);
  std::memcpy(overlap->data() + rec2 + 8, &first_off, 8);
  reseal(*overlap);
  auto r4 = decode(Bytes(overlap));
  ASSERT_FALSE(r4.is_ok());
  EXPECT_NE(r4.status().message().find("conv1.bias"), std::string::npos) << r4.status();
}

TEST(Codec, SampleParamsAreDeterministic) {
  ParamSet a = bench::sample_params(100000, 5);
  ParamSet b = bench::sample_params(100000, 5);
  ParamSet c = bench::sample_params(100000, 6);
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(c));
  EXPECT_NEAR(static_cast<double>(a.nbytes()), 100000.0, 16.0);
}

}  // namespace
}  // namespace flight::transport
