#include <gtest/gtest.h>

#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

#include "flight/params/param_set.h"

namespace flight {
namespace {

TEST(ParamSet, KeepsOrderAndFindsByName) {
  ParamSet p;
  p.add("b", at::ones({2, 3}));
  p.add("a", at::zeros({4}, at::kLong));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "b");
  EXPECT_EQ(p[1].name, "a");
  ASSERT_NE(p.find("a"), nullptr);
  EXPECT_EQ(p.find("a")->scalar_type(), at::kLong);
  EXPECT_EQ(p.find("c"), nullptr);
  EXPECT_EQ(p.numel(), 10);
  EXPECT_EQ(p.nbytes(), 6u * 4 + 4u * 8);
  EXPECT_THROW(p.add("a", at::ones({1})), CheckError);
}

TEST(ParamSet, CloneIsDeepAndEqual) {
  ParamSet p;
  p.add("w", at::arange(6, at::kFloat).reshape({2, 3}));
  ParamSet q = p.clone();
  EXPECT_TRUE(p.equal(q));
  q[0].tensor.add_(1);
  EXPECT_FALSE(p.equal(q));
}

TEST(ParamSet, CompatibilityNamesTheOffendingTensor) {
  ParamSet a, b;
  a.add("conv.weight", at::ones({3, 3}));
  b.add("conv.weight", at::ones({3, 4}));
  Status s = a.check_compatible(b);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("conv.weight"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[3, 4]"), std::string::npos) << s;
  ParamSet c;
  c.add("other", at::ones({3, 3}));
  EXPECT_NE(a.check_compatible(c).message().find("'other'"), std::string::npos);
  ParamSet d;
  d.add("conv.weight", at::ones({3, 3}, at::kDouble));
  EXPECT_FALSE(a.check_compatible(d).is_ok());
  EXPECT_TRUE(ParamSet().check_compatible(ParamSet()).is_ok());
}

}  // namespace
}  // namespace flight
