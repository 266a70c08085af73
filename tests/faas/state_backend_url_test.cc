// The state backend reads its redis:// spec with the one strict Redis URL
// parser: malformed specs fail before any connection is tried.
#include <gtest/gtest.h>

#include "flight/faas/state_backend.h"
#include "tests/support/process.h"

namespace flight::faas {
namespace {

TEST(StateBackendSpec, BadRedisUrlsAreRejected) {
  for (const char* spec : {"redis://127.0.0.1:6379x", "redis://:6379", "redis://127.0.0.1:0",
                           "redis://127.0.0.1:70000", "redis://127.0.0.1:6379/db"}) {
    auto b = make_state_backend(spec, "t:");
    ASSERT_FALSE(b.is_ok()) << spec;
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status();
  }
}

TEST(StateBackendSpec, GoodRedisUrlConnects) {
  testing::RedisServer redis;
  auto b = make_state_backend(redis.url() + "/1", "t:");
  ASSERT_TRUE(b.is_ok()) << b.status();
}

}  // namespace
}  // namespace flight::faas
