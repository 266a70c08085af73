// One conformance suite for every connector (memory, file, redis, tcp, multi),
// then what is specific to each: redis server down / restarted / chunk loss,
// tcp timeouts and garbage frames, file atomicity, multi routing, the registry.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/support/process.h"
#include "transport/checksum.h"
#include "transport/connector.h"
#include "transport/registry.h"
#include "transport/tcp_connector.h"

namespace flight::transport {
namespace {

using testing::RedisServer;
using testing::TempDir;

// One redis-server for the whole test program, started on first use and
// stopped at exit (a leaked pointer here left the server running after ctest).
RedisServer& shared_redis() {
  static RedisServer server;
  return server;
}

// A temp dir for file connectors, removed at exit.
TempDir& shared_dir() {
  static TempDir dir;
  return dir;
}

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 gen(seed);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint32_t v = gen();
    std::memcpy(&s[i], &v, 4);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(gen());
  return s;
}

bool same(const Bytes& b, const std::string& expect) {
  return b && b->size() == expect.size() &&
         (expect.empty() || std::memcmp(b->data(), expect.data(), expect.size()) == 0);
}

struct Case {
  std::string name;
  std::function<nlohmann::json()> config;
  bool honours_ttl;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// The suite's cases are the registry's kinds: a connector joins by registering.
// A kind that needs a resource (a directory, a redis-server, sub-connectors) gets
// it here; any other kind is built from `{kind: NAME}` alone.
std::vector<Case> cases() {
  const std::map<std::string, Case> fixtures = {
      {"file",
       {"file",
        [] {
          return nlohmann::json{{"kind", "file"}, {"dir", shared_dir().file("objects")}};
        },
        false}},  // documented: a file has no lease
      // Small chunks so that ordinary objects span several chunks.
      {"redis",
       {"redis",
        [] {
          return nlohmann::json{{"kind", "redis"},
                                {"port", shared_redis().port()},
                                {"chunk_bytes", "256KiB"},
                                {"window", 3}};
        },
        true}},
      // No local shortcut: every get crosses a real loopback socket.
      {"tcp",
       {"tcp",
        [] {
          return nlohmann::json{{"kind", "tcp"}, {"local_shortcut", false}};
        },
        true}},
      {"multi",
       {"multi",
        [] {
          return nlohmann::json{
              {"kind", "multi"},
              {"connectors",
               {{{"name", "small"}, {"connector", {{"kind", "memory"}}}, {"max_size", 65536}},
                {{"name", "large"},
                 {"connector", {{"kind", "file"}, {"dir", shared_dir().file("multi")}}},
                 {"min_size", 65537}}}}};
        },
        true}},  // the small TTL'd objects go to memory, which honours leases
  };
  std::vector<Case> out;
  for (const std::string& name : connector_registry().names()) {
    auto it = fixtures.find(name);
    if (it != fixtures.end()) {
      out.push_back(it->second);
    } else {
      out.push_back({name, [name] { return nlohmann::json{{"kind", name}}; }, true});
    }
  }
  return out;
}

class ConnectorConformance : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    auto c = make_connector(GetParam().config());
    ASSERT_TRUE(c.is_ok()) << c.status();
    conn_ = std::move(*c);
  }
  std::unique_ptr<Connector> conn_;
};

TEST_P(ConnectorConformance, PutGetExistsEvictAndMissing) {
  std::string value = pattern(1000, 1);
  auto key = conn_->put(value);
  ASSERT_TRUE(key.is_ok()) << key.status();
  auto ex = conn_->exists(*key);
  ASSERT_TRUE(ex.is_ok()) << ex.status();
  EXPECT_TRUE(*ex);
  auto got = conn_->get(*key);
  ASSERT_TRUE(got.is_ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(same(**got, value));
  EXPECT_EQ(reinterpret_cast<uintptr_t>((**got)->data()) % kBufferAlignment, 0u);

  ASSERT_TRUE(conn_->evict(*key).is_ok());
  EXPECT_FALSE(*conn_->exists(*key));
  auto gone = conn_->get(*key);
  ASSERT_TRUE(gone.is_ok()) << gone.status();
  EXPECT_FALSE(gone->has_value());
  EXPECT_TRUE(conn_->evict(*key).is_ok()) << "evicting a missing key is OK";
  // A buffer returned before the eviction stays valid.
  EXPECT_TRUE(same(**got, value));

  // Missing is a value, not an error, however often one asks.
  for (int i = 0; i < 2; ++i) {
    auto again = conn_->get(*key);
    ASSERT_TRUE(again.is_ok()) << again.status();
    EXPECT_FALSE(again->has_value());
    auto ex2 = conn_->exists(*key);
    ASSERT_TRUE(ex2.is_ok()) << ex2.status();
    EXPECT_FALSE(*ex2);
  }

  // put_shared: the connector keeps or copies the buffer; either way the
  // object reads back intact.
  std::string shared_value = pattern(5000, 3);
  auto buf = Buffer::copy_of(shared_value);
  ASSERT_TRUE(buf.is_ok());
  auto shared_key = conn_->put_shared(Bytes(*buf));
  ASSERT_TRUE(shared_key.is_ok()) << shared_key.status();
  auto shared_got = conn_->get(*shared_key);
  ASSERT_TRUE(shared_got.is_ok() && shared_got->has_value()) << shared_got.status();
  EXPECT_TRUE(same(**shared_got, shared_value));
}

TEST_P(ConnectorConformance, SizesAndBatches) {
  // Empty, tiny, around the 64-byte alignment and around redis's 256 KiB
  // chunks and multi's 64 KiB routing boundary.
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{65536},
                   size_t{65537}, size_t{262144}, size_t{262145}, size_t{1048576 + 7}}) {
    std::string value = pattern(n, static_cast<uint32_t>(n));
    auto key = conn_->put(value);
    ASSERT_TRUE(key.is_ok()) << n << ": " << key.status();
    auto got = conn_->get(*key);
    ASSERT_TRUE(got.is_ok()) << n << ": " << got.status();
    ASSERT_TRUE(got->has_value()) << n;
    EXPECT_TRUE(same(**got, value)) << "size " << n;
    EXPECT_TRUE(conn_->evict(*key).is_ok());
  }

  // Batches keep their order and report missing objects in place.
  std::vector<std::string> values;
  for (size_t i = 0; i < 6; ++i) values.push_back(pattern(i * 70000 + i, static_cast<uint32_t>(i)));
  std::vector<ByteView> views(values.begin(), values.end());
  auto keys = conn_->put_batch(views);
  ASSERT_TRUE(keys.is_ok()) << keys.status();
  ASSERT_EQ(keys->size(), values.size());
  ASSERT_TRUE(conn_->evict((*keys)[2]).is_ok());
  auto got = conn_->get_batch(*keys);
  ASSERT_TRUE(got.is_ok()) << got.status();
  ASSERT_EQ(got->size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (i == 2) {
      EXPECT_FALSE((*got)[i].has_value());
    } else {
      ASSERT_TRUE((*got)[i].has_value()) << i;
      EXPECT_TRUE(same(*(*got)[i], values[i])) << i;
    }
  }
  auto none = conn_->get_batch({});
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(ConnectorConformance, Object256MiB) {
  const size_t n = size_t{256} << 20;
  auto src = Buffer::allocate(n);
  ASSERT_TRUE(src.is_ok());
  uint8_t* p = (*src)->data();
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(p + i, &v, 8);
  }
  uint32_t want = crc32c(p, n);
  auto key = conn_->put(ByteView(**src));
  ASSERT_TRUE(key.is_ok()) << key.status();
  src->reset();  // keep peak memory down: the connector has its own copy
  auto got = conn_->get(*key);
  ASSERT_TRUE(got.is_ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  ASSERT_EQ((**got)->size(), n);
  EXPECT_EQ(crc32c((**got)->data(), n), want);
  EXPECT_TRUE(conn_->evict(*key).is_ok());
}

TEST_P(ConnectorConformance, ConcurrentProducersAndConsumers) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 4;
  constexpr int kPerProducer = 15;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::string, std::string>> queue;  // key, expected value
  int produced_done = 0;
  std::atomic<int> verified{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        std::string v = pattern(static_cast<size_t>((p * 7919 + i * 104729) % 300000),
                                static_cast<uint32_t>(p * 1000 + i));
        auto key = conn_->put(v);
        if (!key.is_ok()) {
          ++failures;
          ADD_FAILURE() << key.status();
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        queue.emplace_back(*key, std::move(v));
        cv.notify_one();
      }
      std::lock_guard<std::mutex> lock(mu);
      ++produced_done;
      cv.notify_all();
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        std::pair<std::string, std::string> item;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return !queue.empty() || produced_done == kProducers; });
          if (queue.empty()) return;
          item = std::move(queue.front());
          queue.pop_front();
        }
        auto got = conn_->get(item.first);
        if (!got.is_ok() || !got->has_value() || !same(**got, item.second)) {
          ++failures;
          ADD_FAILURE() << "object " << item.first << " did not come back intact: " << got.status();
        } else {
          ++verified;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(verified.load(), kProducers * kPerProducer);
}

TEST_P(ConnectorConformance, ConfigRebuildsAConnectorThatSeesTheObjects) {
  std::string value = pattern(300000, 9);
  auto key = conn_->put(value);
  ASSERT_TRUE(key.is_ok()) << key.status();
  nlohmann::json config = conn_->config();
  EXPECT_EQ(config["kind"], GetParam().name);
  // Through text, as it travels between processes.
  auto fresh = make_connector(nlohmann::json::parse(config.dump()));
  ASSERT_TRUE(fresh.is_ok()) << fresh.status();
  EXPECT_EQ((*fresh)->config(), config);
  auto got = (*fresh)->get(*key);
  ASSERT_TRUE(got.is_ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(same(**got, value));
  // And objects put through the fresh one are visible to the original.
  auto key2 = (*fresh)->put(value.substr(0, 100));
  ASSERT_TRUE(key2.is_ok()) << key2.status();
  EXPECT_TRUE(*conn_->exists(*key2));
  EXPECT_TRUE((*fresh)->evict(*key).is_ok());
  EXPECT_FALSE(*conn_->exists(*key));
}

TEST_P(ConnectorConformance, TtlLeaseExpiresOrIsIgnoredAsDocumented) {
  PutHints hints;
  hints.ttl_s = 0.2;
  if (!GetParam().honours_ttl) {
    // Documented: the hint is accepted and ignored; the object stays until evicted.
    auto key = conn_->put(pattern(100, 4), hints);
    ASSERT_TRUE(key.is_ok()) << key.status();
    EXPECT_TRUE(*conn_->exists(*key));
    return;
  }
  auto key = conn_->put(pattern(100, 4), hints);
  ASSERT_TRUE(key.is_ok()) << key.status();
  auto plain = conn_->put(pattern(100, 5));
  ASSERT_TRUE(plain.is_ok());
  // Polls the real condition: the lease ends on the server's clock.
  EXPECT_TRUE(testing::wait_until([&] { return !*conn_->exists(*key); }, std::chrono::seconds(10)));
  auto got = conn_->get(*key);
  ASSERT_TRUE(got.is_ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_TRUE(*conn_->exists(*plain)) << "objects without a lease stay";
}

INSTANTIATE_TEST_SUITE_P(AllConnectors, ConnectorConformance, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ------------------------------------------------------------------ registry

TEST(ConnectorRegistry, UnknownKindAndKeysAreClearErrors) {
  auto bad_kind = make_connector({{"kind", "redsi"}});
  ASSERT_FALSE(bad_kind.is_ok());
  EXPECT_EQ(bad_kind.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_kind.status().message().find("did you mean 'redis'"), std::string::npos)
      << bad_kind.status();

  auto bad_key = make_connector({{"kind", "redis"}, {"prot", 6379}});
  ASSERT_FALSE(bad_key.is_ok());
  EXPECT_NE(bad_key.status().message().find("unknown key 'prot'"), std::string::npos);
  EXPECT_NE(bad_key.status().message().find("did you mean 'port'"), std::string::npos);

  auto no_kind = make_connector({{"host", "x"}});
  ASSERT_FALSE(no_kind.is_ok());
  EXPECT_NE(no_kind.status().message().find("'kind'"), std::string::npos);

  auto wrong_type = make_connector({{"kind", "tcp"}, {"port", "eighty"}});
  ASSERT_FALSE(wrong_type.is_ok());
  EXPECT_NE(wrong_type.status().message().find(
                "tcp connector.port: expected a 32-bit integer, got \"eighty\""),
            std::string::npos)
      << wrong_type.status();

  auto not_object = make_connector(nlohmann::json::array());
  EXPECT_FALSE(not_object.is_ok());

  auto file_without_dir = make_connector({{"kind", "file"}});
  ASSERT_FALSE(file_without_dir.is_ok());
  EXPECT_NE(file_without_dir.status().message().find("'dir'"), std::string::npos);

  EXPECT_EQ(connector_registry().names(),
            (std::vector<std::string>{"file", "memory", "multi", "redis", "tcp"}));
}

TEST(ConnectorRegistry, SharedConnectorIsBuiltOncePerConfig) {
  nlohmann::json config = {{"kind", "memory"}, {"name", "shared-test"}};
  auto a = shared_connector(config);
  auto b = shared_connector(config);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->get(), b->get());
}

// --------------------------------------------------------------------- redis

TEST(RedisConnector, ServerDownIsUnavailableNamingTheAddress) {
  int port = testing::free_port();
  auto c = make_connector({{"kind", "redis"}, {"port", port}, {"timeout_s", 2}});
  ASSERT_TRUE(c.is_ok());
  auto put = (*c)->put(std::string("x"));
  ASSERT_FALSE(put.is_ok());
  EXPECT_EQ(put.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(put.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << put.status();
  auto get = (*c)->get("abc");
  EXPECT_EQ(get.status().code(), StatusCode::kUnavailable);
}

TEST(RedisConnector, SurvivesAServerRestart) {
  RedisServer server(/*persistent=*/true);
  auto c = make_connector({{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}});
  ASSERT_TRUE(c.is_ok());
  std::string value = pattern(200000, 11);
  auto key = (*c)->put(value);
  ASSERT_TRUE(key.is_ok()) << key.status();
  server.stop();
  auto down = (*c)->get(*key);
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status();
  server.start();
  // The pooled connection is dead; the connector replaces it and the data persisted.
  auto got = (*c)->get(*key);
  ASSERT_TRUE(got.is_ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(same(**got, value));
}

// Raw hiredis access to look at what the connector stored.
struct RawRedis {
  explicit RawRedis(int port) : ctx(redisConnect("127.0.0.1", port)) {}
  ~RawRedis() { redisFree(ctx); }
  long long integer(const std::string& cmd) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx, cmd.c_str()));
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
  }
  redisContext* ctx;
};

TEST(RedisConnector, ChunksLargeValuesAndCleansUpOnEvict) {
  RedisServer server;
  auto c = make_connector(
      {{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}, {"prefix", "t:"}});
  ASSERT_TRUE(c.is_ok());
  std::string value = pattern(64 * 1024 * 3 + 100, 12);  // 4 chunks
  auto key = (*c)->put(value);
  ASSERT_TRUE(key.is_ok());
  RawRedis raw(server.port());
  EXPECT_EQ(raw.integer("DBSIZE"), 5) << "4 chunks + 1 meta record";
  EXPECT_EQ(raw.integer(("STRLEN t:" + *key + ":3").c_str()), 100);
  ASSERT_TRUE((*c)->evict(*key).is_ok());
  EXPECT_EQ(raw.integer("DBSIZE"), 0) << "evict leaves nothing behind";
}

TEST(RedisConnector, LostChunkReadsAsMissingAndCorruptMetaAsDataLoss) {
  RedisServer server;
  auto c = make_connector({{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}});
  ASSERT_TRUE(c.is_ok());
  auto key = (*c)->put(pattern(64 * 1024 * 5, 13));
  ASSERT_TRUE(key.is_ok());
  RawRedis raw(server.port());
  EXPECT_EQ(raw.integer(("DEL flight:" + *key + ":4").c_str()), 1);
  auto got = (*c)->get(*key);
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_FALSE(got->has_value());
  // The connection that saw the loss was dropped; the next call still works.
  auto other = (*c)->put(std::string("ok"));
  ASSERT_TRUE(other.is_ok()) << other.status();
  EXPECT_TRUE((*(*c)->get(*other)).has_value());

  freeReplyObject(
      redisCommand(raw.ctx, "SET flight:%s %s", key->c_str(), "flight1 99999999999 0 1"));
  auto corrupt = (*c)->get(*key);
  ASSERT_FALSE(corrupt.is_ok());
  EXPECT_EQ(corrupt.status().code(), StatusCode::kDataLoss) << corrupt.status();
}

TEST(RedisConnector, SmallObjectIsOneKeyAndCorruptHeaderIsDataLoss) {
  RedisServer server;
  auto c = make_connector(
      {{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}, {"prefix", "t:"}});
  ASSERT_TRUE(c.is_ok());
  std::string value = pattern(64 * 1024, 14);  // exactly one chunk: stored whole
  auto key = (*c)->put(value);
  ASSERT_TRUE(key.is_ok()) << key.status();
  RawRedis raw(server.port());
  EXPECT_EQ(raw.integer("DBSIZE"), 1) << "one key, no separate meta record";
  EXPECT_EQ(raw.integer(("STRLEN t:" + *key).c_str()), 29 + 64 * 1024) << "29-byte header";
  auto got = (*c)->get(*key);
  ASSERT_TRUE(got.is_ok() && got->has_value()) << got.status();
  EXPECT_TRUE(same(**got, value));

  // A value whose length disagrees with its header (truncated or appended to)
  // is data loss, not a short object.
  EXPECT_GT(raw.integer(("APPEND t:" + *key + " x").c_str()), 0);
  auto longer = (*c)->get(*key);
  ASSERT_FALSE(longer.is_ok());
  EXPECT_EQ(longer.status().code(), StatusCode::kDataLoss) << longer.status();
  // A header that is not digits.
  EXPECT_GT(raw.integer(("SETRANGE t:" + *key + " 10 zz").c_str()), 0);
  auto bad = (*c)->get_batch({*key});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss) << bad.status();
  // Evict still removes it (it only looks at the magic), and the pool still works.
  ASSERT_TRUE((*c)->evict(*key).is_ok());
  EXPECT_EQ(raw.integer("DBSIZE"), 0);
  auto empty = (*c)->put(std::string());
  ASSERT_TRUE(empty.is_ok()) << empty.status();
  auto got_empty = (*c)->get(*empty);
  ASSERT_TRUE(got_empty.is_ok() && got_empty->has_value()) << got_empty.status();
  EXPECT_EQ((**got_empty)->size(), 0u);
}

TEST(RedisConnector, ConcurrentReaderSeesWholeObjectsOrNothing) {
  // A reader that lists the keys while puts run: every object it finds (small
  // ones stored whole, chunked ones whose meta record is written last) must
  // read back complete.
  RedisServer server;
  auto c = make_connector(
      {{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}, {"prefix", "t:"}});
  ASSERT_TRUE(c.is_ok());
  const std::string small = pattern(1000, 15), large = pattern(64 * 1024 * 3 + 5, 16);
  std::atomic<bool> reader_done{false};
  std::thread writer([&] {
    for (int i = 0; i < 20000 && !reader_done; ++i) {
      ASSERT_TRUE((*c)->put(i % 2 ? small : large).is_ok());
    }
  });
  RawRedis raw(server.port());
  std::set<std::string> checked;
  while (checked.size() < 40) {
    auto* r = static_cast<redisReply*>(redisCommand(raw.ctx, "KEYS t:*"));
    ASSERT_TRUE(r != nullptr && r->type == REDIS_REPLY_ARRAY);
    std::vector<std::string> keys;
    for (size_t i = 0; i < r->elements; ++i) {
      std::string k(r->element[i]->str, r->element[i]->len);
      if (k.find(':', 2) == std::string::npos && !checked.count(k)) keys.push_back(k.substr(2));
    }
    freeReplyObject(r);
    for (const auto& k : keys) {
      auto got = (*c)->get(k);
      ASSERT_TRUE(got.is_ok()) << got.status();
      ASSERT_TRUE(got->has_value()) << "a listed object vanished: " << k;
      EXPECT_TRUE(same(**got, (**got)->size() == small.size() ? small : large)) << k;
      checked.insert("t:" + k);
    }
  }
  reader_done = true;
  writer.join();
}

TEST(RedisConnector, UrlForm) {
  auto o = make_connector({{"kind", "redis"}, {"url", "redis://:secret@10.1.2.3:7000/2"}});
  ASSERT_TRUE(o.is_ok()) << o.status();
  nlohmann::json cfg = (*o)->config();
  EXPECT_EQ(cfg["host"], "10.1.2.3");
  EXPECT_EQ(cfg["port"], 7000);
  EXPECT_EQ(cfg["db"], 2);
  EXPECT_EQ(cfg["password"], "secret");
  EXPECT_FALSE(make_connector({{"kind", "redis"}, {"url", "http://x"}}).is_ok());
  for (const char* bad : {"redis://localhost:6379x", "redis://:6379", "redis://localhost:0",
                          "redis://localhost:70000", "redis://localhost:6379/x"}) {
    auto c = make_connector({{"kind", "redis"}, {"url", bad}});
    ASSERT_FALSE(c.is_ok()) << bad;
    EXPECT_NE(c.status().message().find(bad), std::string::npos) << c.status();
  }
}

// ----------------------------------------------------------------------- tcp

TEST(TcpConnector, KeysCarryHostPortAndSize) {
  auto c = make_connector({{"kind", "tcp"}});
  ASSERT_TRUE(c.is_ok());
  auto key = (*c)->put(pattern(12345, 1));
  ASSERT_TRUE(key.is_ok()) << key.status();
  auto k = parse_tcp_key(*key);
  ASSERT_TRUE(k.is_ok()) << k.status();
  EXPECT_EQ(k->host, "127.0.0.1");
  EXPECT_GT(k->port, 0);
  EXPECT_EQ(k->size, 12345u);
  for (const char* bad : {"", "nohost", "h:1/2", "h:0/1/x", "h:99999/1/x", "h:1/-3/x", "h:1/3/"}) {
    auto r = (*c)->get(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TcpConnector, ProducerGoneIsUnavailable) {
  std::string key;
  {
    // A private bind port so no other test's connector keeps the server alive.
    auto producer = make_connector({{"kind", "tcp"}, {"port", testing::free_port()}});
    ASSERT_TRUE(producer.is_ok());
    auto k = (*producer)->put(pattern(100, 1));
    ASSERT_TRUE(k.is_ok());
    key = *k;
  }
  auto consumer = make_connector({{"kind", "tcp"}, {"timeout_s", 2}});
  ASSERT_TRUE(consumer.is_ok());
  auto got = (*consumer)->get(key);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status();
  EXPECT_TRUE((*consumer)->evict(key).is_ok()) << "evicting from a gone producer is moot";
}

// A peer that accepts and never answers: the client's timeout must fire.
TEST(TcpConnector, SilentPeerTimesOut) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  auto c = make_connector({{"kind", "tcp"}, {"timeout_s", 0.3}});
  ASSERT_TRUE(c.is_ok());
  auto got = (*c)->get("127.0.0.1:" + std::to_string(port) + "/10/abc");
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded) << got.status();
  ::close(fd);
}

TEST(TcpConnector, ServerDropsGarbageAndKeepsServing) {
  auto c = make_connector({{"kind", "tcp"}, {"local_shortcut", false}});
  ASSERT_TRUE(c.is_ok());
  std::string value = pattern(4096, 2);
  auto key = (*c)->put(value);
  ASSERT_TRUE(key.is_ok());
  auto k = *parse_tcp_key(*key);
  // Garbage frame and a frame announcing an absurd key length.
  for (std::string junk :
       {std::string(16, 'x'), std::string("FLTQ\x01\0\0\0\xff\xff\xff\x7f\0\0\0\0", 16)}) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(k.port));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::send(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    char buf[16];
    EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0) << "the server closes the connection";
    ::close(fd);
  }
  auto got = (*c)->get(*key);
  ASSERT_TRUE(got.is_ok() && got->has_value()) << got.status();
  EXPECT_TRUE(same(**got, value));
}

TEST(TcpConnector, SizeMismatchIsDataLoss) {
  auto c = make_connector({{"kind", "tcp"}, {"local_shortcut", false}});
  ASSERT_TRUE(c.is_ok());
  auto key = (*c)->put(pattern(1000, 3));
  ASSERT_TRUE(key.is_ok());
  auto k = *parse_tcp_key(*key);
  std::string forged = k.host + ":" + std::to_string(k.port) + "/999/" + k.id;
  auto got = (*c)->get(forged);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << got.status();
}

TEST(TcpConnector, PortInUseIsAClearError) {
  auto first = make_connector({{"kind", "tcp"}, {"port", testing::free_port()}});
  ASSERT_TRUE(first.is_ok());
  auto k = (*first)->put(std::string("x"));
  ASSERT_TRUE(k.is_ok());
  int port = parse_tcp_key(*k)->port;
  // Another bind address string for the same port, so the server is not shared.
  auto second = make_connector({{"kind", "tcp"}, {"host", "0.0.0.0"}, {"port", port}});
  ASSERT_TRUE(second.is_ok());
  auto put = (*second)->put(std::string("y"));
  ASSERT_FALSE(put.is_ok());
  EXPECT_NE(put.status().message().find("cannot listen"), std::string::npos) << put.status();
}

// ---------------------------------------------------------------------- file

TEST(FileConnector, LeavesNoTempFilesAndRejectsPathKeys) {
  TempDir dir;
  auto c = make_connector({{"kind", "file"}, {"dir", dir.file("objs")}, {"fsync", true}});
  ASSERT_TRUE(c.is_ok()) << c.status();
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(*(*c)->put(pattern(1000 * i, i)));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("objs"))) {
    ++files;
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 5);
  for (const char* bad : {"../etc/passwd", "a/b", "", ".hidden"}) {
    auto r = (*c)->get(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ((*c)->config()["dir"], dir.file("objs"));
}

// --------------------------------------------------------------------- multi

TEST(MultiConnector, RoutesBySizeTagsAndPriority) {
  TempDir dir;
  nlohmann::json config = {
      {"kind", "multi"},
      {"connectors",
       {{{"name", "small"}, {"connector", {{"kind", "memory"}}}, {"max_size", "1KiB"}},
        {{"name", "large"}, {"connector", {{"kind", "memory"}}}, {"min_size", 1025}},
        {{"name", "ckpt"},
         {"connector", {{"kind", "file"}, {"dir", dir.path()}}},
         {"tags", {"checkpoint"}},
         {"priority", 5}}}}};
  auto c = make_connector(config);
  ASSERT_TRUE(c.is_ok()) << c.status();
  auto small = (*c)->put(pattern(10, 1));
  auto large = (*c)->put(pattern(5000, 2));
  PutHints tagged;
  tagged.tags = {"checkpoint", "round-1"};
  auto ckpt = (*c)->put(pattern(5000, 3), tagged);
  ASSERT_TRUE(small.is_ok() && large.is_ok() && ckpt.is_ok());
  EXPECT_EQ(small->rfind("small:", 0), 0u) << *small;
  EXPECT_EQ(large->rfind("large:", 0), 0u) << *large;
  EXPECT_EQ(ckpt->rfind("ckpt:", 0), 0u) << *ckpt;
  EXPECT_TRUE(std::filesystem::exists(dir.file(ckpt->substr(5))));
  auto bad = (*c)->get("nosuch:abc");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*c)->get("nocolon").status().code(), StatusCode::kInvalidArgument);

  // No rule takes a 1 KiB..1 KiB gap? Make one that has a gap.
  auto gappy = make_connector(
      {{"kind", "multi"},
       {"connectors", {{{"name", "a"}, {"connector", {{"kind", "memory"}}}, {"max_size", 10}}}}});
  ASSERT_TRUE(gappy.is_ok());
  auto none = (*gappy)->put(pattern(11, 1));
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("11 bytes"), std::string::npos);

  auto dup = make_connector({{"kind", "multi"},
                             {"connectors",
                              {{{"name", "a"}, {"connector", {{"kind", "memory"}}}},
                               {{"name", "a"}, {"connector", {{"kind", "memory"}}}}}}});
  EXPECT_FALSE(dup.is_ok());
  auto bad_sub = make_connector(
      {{"kind", "multi"}, {"connectors", {{{"name", "a"}, {"connector", {{"kind", "nope"}}}}}}});
  ASSERT_FALSE(bad_sub.is_ok());
  EXPECT_NE(bad_sub.status().message().find("rule 'a'"), std::string::npos) << bad_sub.status();
}

}  // namespace
}  // namespace flight::transport
