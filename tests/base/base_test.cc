#include <gtest/gtest.h>

#include <sstream>

#include "flight/base/ids.h"
#include "flight/base/registry.h"
#include "flight/base/status.h"
#include "flight/base/strings.h"

namespace flight {
namespace {

StatusOr<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("not positive: " + std::to_string(x));
  return x;
}

Status doubled(int x, int* out) {
  FLIGHT_ASSIGN_OR_RETURN(int v, parse_positive(x));
  *out = 2 * v;
  return Status::ok();
}

TEST(Status, OkAndErrorsCarryCodeAndMessage) {
  EXPECT_TRUE(Status::ok().is_ok());
  Status s = not_found("key 'a'");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.to_string(), "NotFound: key 'a'");
  EXPECT_EQ(s.with_context("redis").message(), "redis: key 'a'");
}

TEST(Status, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(doubled(4, &out).is_ok());
  EXPECT_EQ(out, 8);
  Status s = doubled(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "not positive: -1");
}

TEST(Status, ValueOfErrorThrowsCheckError) {
  StatusOr<int> s = internal_error("boom");
  EXPECT_THROW((void)s.value(), CheckError);
  try {
    FLIGHT_CHECK(1 == 2, "numbers");
    FAIL() << "FLIGHT_CHECK did not throw";
  } catch (const CheckError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("base_test.cc"), std::string::npos) << what;
    EXPECT_NE(what.find("1 == 2"), std::string::npos) << what;
    EXPECT_NE(what.find("numbers"), std::string::npos) << what;
  }
}

TEST(Strings, SplitJoinTrimLower) {
  EXPECT_EQ(split("a,b,,c", ','), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(join({"x", "y", "z"}, "-"), "x-y-z");
  EXPECT_EQ(trim("  hi \n"), "hi");
  EXPECT_EQ(to_lower("LeAder"), "leader");
}

TEST(Strings, DidYouMeanSuggestsOnlyCloseNames) {
  EXPECT_EQ(did_you_mean("fedvag", {"fedavg", "fedsgd", "krum"}), " (did you mean 'fedavg'?)");
  EXPECT_EQ(did_you_mean("zzzzzzzz", {"fedavg", "krum"}), "");
  EXPECT_EQ(did_you_mean("deadline", {"min_fraction", "round_deadline_s"}),
            " (did you mean 'round_deadline_s'?)");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Strings, ParseBytes) {
  uint64_t v = 0;
  EXPECT_TRUE(parse_bytes("64", &v));
  EXPECT_EQ(v, 64u);
  EXPECT_TRUE(parse_bytes("1MiB", &v));
  EXPECT_EQ(v, 1u << 20);
  EXPECT_TRUE(parse_bytes("256M", &v));
  EXPECT_EQ(v, 256u << 20);
  EXPECT_FALSE(parse_bytes("12 parsecs", &v));
  EXPECT_FALSE(parse_bytes("99999999999999999999999", &v));
}

TEST(Strings, HexRoundTripsAndRejectsJunk) {
  const uint8_t bytes[] = {0x00, 0x7f, 0xa5, 0xff};
  EXPECT_EQ(hex_encode(bytes, 4), "007fa5ff");
  std::vector<uint8_t> back;
  ASSERT_TRUE(hex_decode("007FA5ff", &back));
  EXPECT_EQ(back, std::vector<uint8_t>(bytes, bytes + 4));
  EXPECT_FALSE(hex_decode("abc", &back));
  EXPECT_FALSE(hex_decode("zz", &back));
}

struct Shape {
  virtual ~Shape() = default;
  virtual int sides() const = 0;
};
struct Square : Shape {
  int sides() const override { return 4; }
};

TEST(Registry, CreatesByNameAndExplainsUnknownNames) {
  Registry<Shape> reg("shape");
  reg.add("square",
          []() -> StatusOr<std::unique_ptr<Shape>> { return std::make_unique<Square>(); });
  auto sq = reg.create("square");
  ASSERT_TRUE(sq.is_ok());
  EXPECT_EQ((*sq)->sides(), 4);
  auto bad = reg.create("sqare");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("did you mean 'square'"), std::string::npos);
  EXPECT_THROW(reg.add("square", nullptr), CheckError);
}

TEST(Ids, RandomHexIsHexAndDistinct) {
  auto a = random_hex(32), b = random_hex(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace flight
