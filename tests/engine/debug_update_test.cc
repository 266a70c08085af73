// debug: true's update: the fused path (perturbation written straight into
// the encoded buffer, checksummed in the same pass) puts exactly the bytes of
// encode(perturbed_copy(...)), for every dtype the codec carries, odd sizes,
// chunk and streaming boundaries, and non-contiguous inputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>

#include "flight/engine/debug_update.h"
#include "transport/codec.h"

namespace flight::engine {
namespace {

ParamSet mixed_model() {
  at::manual_seed(11);
  ParamSet p;
  p.add("w", at::randn({37, 29}));
  // Above the codec's 4 MiB streaming threshold, not a whole number of chunks.
  p.add("big", at::randn({1100003}));
  p.add("t", at::randn({13, 7}).t());  // non-contiguous
  p.add("scalar", at::full({}, -3.25f));
  p.add("empty", at::empty({0, 3}));
  p.add("d", at::randn({4099}, at::kDouble));
  p.add("h", at::randn({8195}).to(at::kHalf));
  p.add("bf", at::randn({1001}).to(at::kBFloat16));
  p.add("steps", at::arange(1, 12, at::kLong));
  p.add("mask", at::randint(0, 2, {77}, at::kByte).to(at::kBool));
  p.add("tiny", at::full({3}, 1e-30f));
  return p;
}

TEST(DebugUpdate, FusedEncodingIsEncodeOfThePerturbedCopy) {
  const ParamSet global = mixed_model();
  for (const int64_t worker : {0, 6, 2047, 99999}) {
    auto fused = encode_perturbed(global, worker);
    ASSERT_TRUE(fused.is_ok()) << fused.status();
    auto want = transport::encode(perturbed_copy(global, worker));
    ASSERT_TRUE(want.is_ok()) << want.status();
    ASSERT_EQ(fused->bytes->size(), (*want)->size()) << worker;
    EXPECT_EQ(std::memcmp(fused->bytes->data(), (*want)->data(), (*want)->size()), 0) << worker;
    auto header = transport::peek_header(transport::ByteView(**want));
    ASSERT_TRUE(header.is_ok());
    EXPECT_EQ(fused->checksum, header->checksum);
    // A real perturbation: floats moved by (worker + 1) x 2^-20, integers not.
    auto decoded = transport::decode(fused->bytes);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status();
    const double delta = static_cast<double>(worker + 1) * 0x1p-20;
    EXPECT_TRUE(decoded->find("w")->equal(global.find("w")->add(delta)));
    EXPECT_TRUE(decoded->find("steps")->equal(*global.find("steps")));
    EXPECT_FALSE(decoded->find("big")->equal(*global.find("big")));
  }
}

}  // namespace
}  // namespace flight::engine
