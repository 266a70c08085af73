// parse_redis_url: the one strict parser of redis://[:password@]host[:port][/db].
#include "flight/base/redis_url.h"

#include <gtest/gtest.h>

namespace flight {
namespace {

TEST(RedisUrl, ReadsEveryPart) {
  auto u = parse_redis_url("redis://:secret@10.1.2.3:7000/2");
  ASSERT_TRUE(u.is_ok()) << u.status();
  EXPECT_EQ(u->host, "10.1.2.3");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->db, 2);
  EXPECT_EQ(u->password, "secret");
  auto user = parse_redis_url("redis://user:pw@h:1");
  ASSERT_TRUE(user.is_ok());
  EXPECT_EQ(user->password, "pw");
  EXPECT_EQ(user->port, 1);
}

TEST(RedisUrl, DefaultsPortAndDb) {
  auto u = parse_redis_url("redis://localhost");
  ASSERT_TRUE(u.is_ok()) << u.status();
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);
  EXPECT_EQ(u->password, "");
  auto slash = parse_redis_url("redis://localhost:65535/");
  ASSERT_TRUE(slash.is_ok()) << slash.status();
  EXPECT_EQ(slash->port, 65535);
  EXPECT_EQ(slash->db, 0);
}

TEST(RedisUrl, RejectsBadUrlsNamingThePart) {
  struct Case {
    const char* url;
    const char* expect;
  };
  for (const Case& c :
       {Case{"redis://localhost:6379x", "port '6379x'"}, Case{"redis://localhost:", "port ''"},
        Case{"redis://localhost:0", "port '0'"}, Case{"redis://localhost:70000", "port '70000'"},
        Case{"redis://localhost:-1", "port '-1'"}, Case{"redis://localhost: 80", "port ' 80'"},
        Case{"redis://localhost:99999999999999", "port"}, Case{"redis://:6379", "missing host"},
        Case{"redis://", "missing host"}, Case{"redis://h:1/x", "database 'x'"},
        Case{"redis://h:1/-2", "database '-2'"}, Case{"http://h:1", "must start with redis://"},
        Case{"", "must start with redis://"}}) {
    auto u = parse_redis_url(c.url);
    ASSERT_FALSE(u.is_ok()) << c.url;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(u.status().message().find(c.expect), std::string::npos) << u.status();
    EXPECT_NE(u.status().message().find(std::string("'") + c.url + "'"), std::string::npos)
        << u.status();
  }
}

TEST(RedisUrl, MessagesNeverCarryThePassword) {
  EXPECT_EQ(redact_redis_url("redis://:s3cret@h:1/2"), "redis://***@h:1/2");
  EXPECT_EQ(redact_redis_url("redis://user:s3cret@h:1"), "redis://***@h:1");
  EXPECT_EQ(redact_redis_url("redis://h:1"), "redis://h:1");
  auto u = parse_redis_url("redis://:s3cret@h:1x");
  ASSERT_FALSE(u.is_ok());
  EXPECT_EQ(u.status().message().find("s3cret"), std::string::npos) << u.status();
  EXPECT_NE(u.status().message().find("'redis://***@h:1x'"), std::string::npos) << u.status();
}

}  // namespace
}  // namespace flight
