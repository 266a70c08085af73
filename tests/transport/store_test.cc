// Store (cache bounded in bytes, single-flight fetches, scopes, cross-connector
// resolution), Ref JSON and the two-process tcp exchange through the
// real `flight` binary.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include "flight/bench/sample_params.h"
#include "tests/support/process.h"
#include "transport/registry.h"
#include "transport/store.h"

namespace flight::transport {
namespace {

using testing::RedisServer;
using testing::Subprocess;
using testing::TempDir;

StoreOptions cache(uint64_t bytes, bool cache_puts) {
  StoreOptions o;
  o.cache_bytes = bytes;
  o.cache_puts = cache_puts;
  return o;
}

PutOptions in_scope(const std::string& scope) {
  PutOptions o;
  o.scope = scope;
  return o;
}

std::unique_ptr<Store> make_store(const nlohmann::json& config, StoreOptions options = {}) {
  auto s = Store::create(config, options);
  EXPECT_TRUE(s.is_ok()) << s.status();
  return s.is_ok() ? std::move(*s) : nullptr;
}

TEST(Ref, JsonRoundTripAndErrors) {
  Ref r;
  r.connector = nlohmann::json{{"kind", "redis"}, {"host", "10.0.0.1"}, {"port", 6379}};
  r.key = "abc";
  r.size = 1234567890123ull;
  r.checksum = 0xdeadbeef;
  nlohmann::json j = r.to_json();
  EXPECT_EQ(j["checksum"], "deadbeef");
  auto back = Ref::from_json(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(*back, r);

  auto missing = Ref::from_json({{"key", "k"}, {"size", 1}, {"checksum", "00000000"}});
  EXPECT_NE(missing.status().message().find("'connector'"), std::string::npos);
  nlohmann::json extra = j;
  extra["sise"] = 3;
  EXPECT_NE(Ref::from_json(extra).status().message().find("unknown key 'sise'"), std::string::npos);
  nlohmann::json bad_sum = j;
  bad_sum["checksum"] = "xyz";
  EXPECT_FALSE(Ref::from_json(bad_sum).is_ok());
  nlohmann::json neg = j;
  neg["size"] = -1;
  EXPECT_FALSE(Ref::from_json(neg).is_ok());
}

TEST(StoreOptions, ParsesAndRejectsUnknownKeys) {
  auto o = StoreOptions::from_json({{"cache_bytes", "64MiB"}, {"cache_puts", false}});
  ASSERT_TRUE(o.is_ok()) << o.status();
  EXPECT_EQ(o->cache_bytes, 64ull << 20);
  EXPECT_FALSE(o->cache_puts);
  auto back = StoreOptions::from_json(o->to_json());
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->cache_bytes, o->cache_bytes);
  auto bad = StoreOptions::from_json({{"cache_byte", 1}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("did you mean 'cache_bytes'"), std::string::npos);
}

TEST(Store, PutGetRoundTripAndStats) {
  auto store = make_store({{"kind", "memory"}}, cache(64 << 20, false));
  ParamSet p = bench::sample_params(100000, 1);
  auto ref = store->put(p);
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  EXPECT_EQ(ref->connector->at("kind"), "memory");
  auto got = store->get(*ref);
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_TRUE(got->equal(p));
  auto again = store->get(*ref);
  ASSERT_TRUE(again.is_ok());
  StoreStats s = store->stats();
  EXPECT_EQ(s.puts, 1u);
  EXPECT_EQ(s.gets, 2u);
  EXPECT_EQ(s.fetches, 1u);
  EXPECT_EQ(s.cache_hits, 1u);
  EXPECT_EQ(s.bytes_put, ref->size);
  EXPECT_EQ(s.bytes_fetched, ref->size);
  store->reset_stats();
  EXPECT_EQ(store->stats().gets, 0u);
}

// Totals over several Stores and the traffic between two snapshots.
TEST(Store, StatsAddAndSubtract) {
  auto a = make_store({{"kind", "memory"}, {"name", "stats-a"}}, cache(64 << 20, false));
  auto b = make_store({{"kind", "memory"}, {"name", "stats-b"}}, cache(64 << 20, false));
  ParamSet p = bench::sample_params(1000, 3);
  auto ra = a->put(p);
  ASSERT_TRUE(ra.is_ok());
  StoreStats before = a->stats();
  ASSERT_TRUE(b->get(*ra).is_ok());  // b fetches a's object through a's connector
  ASSERT_TRUE(a->put(p).is_ok());
  StoreStats total = a->stats();
  total += b->stats();
  EXPECT_EQ(total.puts, 2u);
  EXPECT_EQ(total.fetches, 1u);
  EXPECT_EQ(total.bytes_put, 2 * ra->size);
  EXPECT_EQ(total.bytes_fetched, ra->size);
  StoreStats since = total - before;
  EXPECT_EQ(since.puts, 1u);
  EXPECT_EQ(since.bytes_put, ra->size);
  EXPECT_EQ(since.bytes_fetched, ra->size);
  EXPECT_EQ(since.gets, 1u);
}

TEST(Store, CachedPutsAreServedWithoutFetching) {
  auto store = make_store({{"kind", "memory"}});
  ParamSet p = bench::sample_params(50000, 2);
  auto ref = store->put(p);
  ASSERT_TRUE(ref.is_ok());
  auto got = store->get(*ref);
  ASSERT_TRUE(got.is_ok());
  EXPECT_TRUE(got->equal(p));
  EXPECT_EQ(store->stats().fetches, 0u);
  EXPECT_EQ(store->stats().cache_hits, 1u);
  // The cached copy does not alias the caller's tensors: changing p later
  // does not change what the Store returns.
  p[0].tensor.add_(1);
  EXPECT_FALSE(store->get(*ref)->equal(p));
}

// EncodingWriter + put_encoded: bytes produced in place (here, a copy of p's
// tensors) are encode(p) byte for byte, and put as such give put(p)'s Ref
// size and checksum, stats and cached view.
TEST(Store, PutEncodedIsPutOfTheDecodedParamSet) {
  ParamSet p = bench::sample_params(300000, 4);
  p.add("steps", at::arange(5, at::kLong));
  p.add("scale", at::full({}, 0.5, at::kDouble));
  auto writer = EncodingWriter::begin(p);
  ASSERT_TRUE(writer.is_ok()) << writer.status();
  for (size_t i = 0; i < p.size(); ++i) {
    const auto* src = static_cast<const uint8_t*>(p[i].tensor.data_ptr());
    ASSERT_TRUE(writer
                    ->write(i, [src](uint8_t* chunk, uint64_t begin,
                                     uint64_t n) { std::memcpy(chunk, src + begin, n); })
                    .is_ok());
  }
  auto sealed = std::move(*writer).seal();
  ASSERT_TRUE(sealed.is_ok()) << sealed.status();
  auto want = encode(p);
  ASSERT_TRUE(want.is_ok());
  ASSERT_EQ(sealed->bytes->size(), (*want)->size());
  EXPECT_EQ(std::memcmp(sealed->bytes->data(), (*want)->data(), (*want)->size()), 0);

  auto a = make_store({{"kind", "memory"}, {"name", "put-encoded-a"}});
  auto b = make_store({{"kind", "memory"}, {"name", "put-encoded-b"}});
  auto by_put = a->put(p, in_scope("s"));
  auto by_bytes = b->put_encoded(*sealed, in_scope("s"));
  ASSERT_TRUE(by_put.is_ok() && by_bytes.is_ok()) << by_bytes.status();
  EXPECT_EQ(by_bytes->size, by_put->size);
  EXPECT_EQ(by_bytes->checksum, by_put->checksum);
  StoreStats sa = a->stats(), sb = b->stats();
  EXPECT_EQ(sb.puts, sa.puts);
  EXPECT_EQ(sb.bytes_put, sa.bytes_put);
  EXPECT_EQ(sb.cached_bytes, sa.cached_bytes);
  auto got = b->get(*by_bytes);  // the cached view: no fetch, no decode
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_TRUE(got->equal(p));
  EXPECT_EQ(b->stats().fetches, 0u);
  EXPECT_EQ(b->stats().cache_hits, 1u);
  ASSERT_TRUE(b->evict_scope("s").is_ok());
  EXPECT_TRUE(b->scopes().empty());

  // A checksum that is not the preamble's is refused, not put.
  SealedBytes wrong = *sealed;
  wrong.checksum ^= 1;
  EXPECT_EQ(b->put_encoded(wrong).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->stats().puts, 1u);

  // Entries go in order, each once, and all before seal().
  auto partial = EncodingWriter::begin(p);
  ASSERT_TRUE(partial.is_ok());
  auto noop = [](uint8_t*, uint64_t, uint64_t) {};
  EXPECT_EQ(partial->write(1, noop).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(partial->write(0, noop).is_ok());
  EXPECT_EQ(partial->write(0, noop).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::move(*partial).seal().status().code(), StatusCode::kFailedPrecondition);
}

TEST(Store, CacheIsBoundedInBytesAndResultsOutliveEviction) {
  const uint64_t object = 1 << 20;
  auto store = make_store({{"kind", "memory"}}, cache(3 * object + 3 * 4096, false));
  std::vector<Ref> refs;
  for (int i = 0; i < 5; ++i) refs.push_back(*store->put(bench::sample_params(object, i)));
  ParamSet first = *store->get(refs[0]);
  for (int i = 1; i < 5; ++i) ASSERT_TRUE(store->get(refs[i]).is_ok());
  StoreStats s = store->stats();
  EXPECT_LE(s.cached_bytes, 3 * object + 3 * 4096);
  EXPECT_GE(s.cached_bytes, 3 * object) << "the budget is used";
  // refs[0] was least recently used and is gone from the cache, yet the
  // ParamSet obtained earlier still holds its data.
  EXPECT_TRUE(first.equal(bench::sample_params(object, 0)));
  store->reset_stats();
  ASSERT_TRUE(store->get(refs[4]).is_ok());
  EXPECT_EQ(store->stats().cache_hits, 1u);
  ASSERT_TRUE(store->get(refs[0]).is_ok());
  EXPECT_EQ(store->stats().fetches, 1u) << "the evicted object is fetched again";

  // Objects larger than the whole budget are returned but not cached.
  auto tiny = make_store({{"kind", "memory"}}, cache(1000, true));
  auto big = tiny->put(bench::sample_params(object, 9));
  ASSERT_TRUE(big.is_ok());
  EXPECT_EQ(tiny->stats().cached_bytes, 0u);
  EXPECT_TRUE(tiny->get(*big).is_ok());
  EXPECT_EQ(tiny->stats().cached_bytes, 0u);
}

TEST(Store, ConcurrentGetsOfOneRefFetchOnce) {
  // Producer and consumer are different Stores so the consumer must fetch; a
  // 32 MiB object over a real socket keeps the fetch long enough to overlap.
  auto producer = make_store({{"kind", "tcp"}, {"local_shortcut", false}});
  auto consumer = make_store({{"kind", "memory"}});
  ParamSet p = bench::sample_params(32 << 20, 3);
  auto ref = producer->put(p);
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  constexpr int kThreads = 8;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<ParamSet> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (!go.load()) std::this_thread::yield();
      auto r = consumer->get(*ref);
      EXPECT_TRUE(r.is_ok()) << r.status();
      if (r.is_ok()) results[i] = std::move(*r);
    });
  }
  while (ready.load() < kThreads) std::this_thread::yield();
  go = true;
  for (auto& t : threads) t.join();
  StoreStats s = consumer->stats();
  EXPECT_EQ(s.gets, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(s.fetches, 1u) << "one fetch however many threads asked";
  EXPECT_EQ(s.bytes_fetched, ref->size);
  for (const auto& r : results) EXPECT_TRUE(r.equal(p));
  // They share one decoded buffer.
  EXPECT_EQ(results[0][0].tensor.data_ptr(), results[kThreads - 1][0].tensor.data_ptr());
}

TEST(Store, ResolvesRefsFromOtherConnectors) {
  TempDir dir;
  auto files = make_store({{"kind", "file"}, {"dir", dir.path()}});
  auto mem = make_store({{"kind", "memory"}});
  ParamSet p = bench::sample_params(20000, 4);
  auto ref = files->put(p);
  ASSERT_TRUE(ref.is_ok());
  // Through JSON, as a control message would carry it.
  auto moved = Ref::from_json(nlohmann::json::parse(ref->to_json().dump()));
  ASSERT_TRUE(moved.is_ok());
  auto got = mem->get(*moved);
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_TRUE(got->equal(p));
  EXPECT_EQ(mem->stats().fetches, 1u);
}

TEST(Store, MismatchedRefIsDataLossAndMissingIsNotFound) {
  auto store = make_store({{"kind", "memory"}}, cache(1 << 20, false));
  auto ref = store->put(bench::sample_params(1000, 5));
  ASSERT_TRUE(ref.is_ok());
  Ref wrong_sum = *ref;
  wrong_sum.checksum ^= 1;
  EXPECT_EQ(store->get(wrong_sum).status().code(), StatusCode::kDataLoss);
  Ref wrong_size = *ref;
  wrong_size.size += 64;
  EXPECT_EQ(store->get(wrong_size).status().code(), StatusCode::kDataLoss);
  ASSERT_TRUE(store->evict(*ref).is_ok());
  auto gone = store->get(*ref);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound) << gone.status();
  Ref unknown = *ref;
  unknown.connector = {{"kind", "warp"}};
  EXPECT_EQ(store->get(unknown).status().code(), StatusCode::kInvalidArgument);
}

TEST(Store, ScopesLeaveNothingBehindInRedis) {
  RedisServer server;
  auto store = make_store({{"kind", "redis"}, {"port", server.port()}, {"chunk_bytes", "64KiB"}});
  std::vector<Ref> round1, round2;
  for (int i = 0; i < 3; ++i)
    round1.push_back(*store->put(bench::sample_params(200000, i), in_scope("round-1")));
  for (int i = 0; i < 2; ++i)
    round2.push_back(*store->put(bench::sample_params(1000, i), in_scope("round-2")));
  EXPECT_EQ(store->scopes(), (std::vector<std::string>{"round-1", "round-2"}));
  ASSERT_TRUE(store->evict_scope("round-1").is_ok());
  for (const auto& r : round1) {
    EXPECT_FALSE(*store->connector().exists(r.key));
    EXPECT_EQ(store->get(r).status().code(), StatusCode::kNotFound);
  }
  for (const auto& r : round2) EXPECT_TRUE(*store->connector().exists(r.key));
  EXPECT_EQ(store->scopes(), (std::vector<std::string>{"round-2"}));
  ASSERT_TRUE(store->evict_scope("round-2").is_ok());
  EXPECT_TRUE(store->evict_scope("never-used").is_ok());
  redisContext* raw = redisConnect("127.0.0.1", server.port());
  auto* reply = static_cast<redisReply*>(redisCommand(raw, "DBSIZE"));
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->integer, 0) << "a run leaves nothing behind";
  freeReplyObject(reply);
  redisFree(raw);
}

TEST(Store, CorruptSmallRedisObjectIsCaughtByTheChecksum) {
  // A small object lives whole in one redis key; one flipped payload byte
  // keeps its length, so only the Ref's checksum can catch it.
  RedisServer server;
  auto store = make_store({{"kind", "redis"}, {"port", server.port()}}, cache(0, false));
  auto ref = store->put(bench::sample_params(1000, 3));
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  ASSERT_TRUE(store->get(*ref).is_ok());
  redisContext* raw = redisConnect("127.0.0.1", server.port());
  const std::string key = "flight:" + ref->key;
  const long long offset = 29 + static_cast<long long>(ref->size) - 100;  // in the payload
  auto* byte = static_cast<redisReply*>(
      redisCommand(raw, "GETRANGE %b %lld %lld", key.data(), key.size(), offset, offset));
  ASSERT_TRUE(byte != nullptr && byte->type == REDIS_REPLY_STRING && byte->len == 1);
  char flipped = static_cast<char>(byte->str[0] ^ 0x5a);
  freeReplyObject(byte);
  freeReplyObject(redisCommand(raw, "SETRANGE %b %lld %b", key.data(), key.size(), offset, &flipped,
                               size_t{1}));
  redisFree(raw);
  auto got = store->get(*ref);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss) << got.status();
}

TEST(Store, TtlLeaseThroughPutOptions) {
  auto store = make_store({{"kind", "memory"}}, cache(0, false));
  PutOptions lease;
  lease.ttl_s = 0.1;
  auto ref = store->put(bench::sample_params(1000, 1), lease);
  ASSERT_TRUE(ref.is_ok());
  EXPECT_TRUE(
      testing::wait_until([&] { return !store->get(*ref).is_ok(); }, std::chrono::seconds(10)));
  EXPECT_EQ(store->get(*ref).status().code(), StatusCode::kNotFound);
}

// ------------------------------------------------------------ two processes

std::string flight_binary() { return FLIGHT_BINARY; }

TEST(TcpTwoProcesses, ConsumerPullsStraightFromAProducerProcess) {
  TempDir dir;
  std::string ref_path = dir.file("ref.json");
  Subprocess::Options opts;
  opts.stderr_path = dir.file("producer.err");
  Subprocess producer(
      {flight_binary(), "transport-peer", "--mode", "put", "--connector", R"({"kind":"tcp"})",
       "--bytes", "3000000", "--seed", "42", "--out", ref_path, "--linger", "120"},
      opts);
  ASSERT_TRUE(
      testing::wait_until([&] { return std::ifstream(ref_path).good() || !producer.running(); },
                          std::chrono::seconds(60)))
      << testing::read_file(dir.file("producer.err"));
  ASSERT_TRUE(producer.running()) << testing::read_file(dir.file("producer.err"));
  auto ref = Ref::from_json(nlohmann::json::parse(testing::read_file(ref_path)));
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  EXPECT_EQ(ref->connector->at("kind"), "tcp");

  auto store = make_store({{"kind", "memory"}});
  auto got = store->get(*ref);
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_TRUE(got->equal(bench::sample_params(3000000, 42)));
  EXPECT_EQ(store->stats().bytes_fetched, ref->size);

  // Remote evict, then the object is gone from the producer.
  ASSERT_TRUE(store->evict(*ref).is_ok());
  EXPECT_EQ(store->get(*ref).status().code(), StatusCode::kNotFound);

  producer.signal(SIGTERM);
  EXPECT_EQ(producer.wait(), 0);
  // With the producer gone the Ref cannot be resolved, and says why.
  Ref again = *ref;
  auto after = Store::process_default().get(again);
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status();
}

TEST(TcpTwoProcesses, AnotherProcessResolvesOurRef) {
  TempDir dir;
  auto store = make_store({{"kind", "tcp"}});
  auto ref = store->put(bench::sample_params(2000000, 7));
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  {
    std::ofstream f(dir.file("ref.json"));
    f << ref->to_json().dump();
  }
  Subprocess::Options opts;
  opts.stderr_path = dir.file("consumer.err");
  opts.stdout_path = dir.file("consumer.out");
  Subprocess consumer({flight_binary(), "transport-peer", "--mode", "get", "--ref",
                       dir.file("ref.json"), "--bytes", "2000000", "--seed", "7"},
                      opts);
  EXPECT_EQ(consumer.wait(), 0) << testing::read_file(dir.file("consumer.err"));
  EXPECT_EQ(testing::read_file(dir.file("consumer.out")).rfind("ok ", 0), 0u);

  // A wrong expectation makes the helper fail: the check above is real.
  Subprocess wrong({flight_binary(), "transport-peer", "--mode", "get", "--ref",
                    dir.file("ref.json"), "--bytes", "2000000", "--seed", "8"},
                   opts);
  EXPECT_EQ(wrong.wait(), 1);
}

}  // namespace
}  // namespace flight::transport
