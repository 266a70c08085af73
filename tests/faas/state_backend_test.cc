// One conformance suite for every registered state backend
// (state_backend_names()): a backend joins by registering, and the suite
// fails until it has an environment here saying how to reach a real one.
// Durable backends must hand back exactly what was written; non-durable ones
// must accept every write and hand back nothing.
#include <functional>
#include <map>
#include <memory>
#include <set>

#include <gtest/gtest.h>

#include "flight/faas/service_state.h"
#include "flight/faas/state_backend.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

// A live instance to point a backend at: its spec, and whatever keeps it up.
struct Environment {
  std::string spec;
  std::shared_ptr<void> keep_alive;
};
using EnvironmentFactory = std::function<Environment()>;

const std::map<std::string, EnvironmentFactory>& environments() {
  static const std::map<std::string, EnvironmentFactory> envs = {
      {"memory",
       [] {
         return Environment{"memory", nullptr};
       }},
      {"redis",
       [] {
         auto redis = std::make_shared<RedisServer>(false, "conformance-pw");
         return Environment{"redis://:conformance-pw@127.0.0.1:" + std::to_string(redis->port()),
                            redis};
       }},
  };
  return envs;
}

TEST(StateBackendRegistry, EveryRegisteredBackendHasAConformanceEnvironment) {
  auto names = state_backend_names();
  EXPECT_GE(names.size(), 2u);
  for (const auto& name : names) {
    EXPECT_TRUE(environments().count(name))
        << "state backend '" << name << "' is registered but the conformance suite cannot run it";
  }
}

class StateBackendConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto it = environments().find(GetParam());
    ASSERT_NE(it, environments().end());
    env_ = it->second();
    prefix_ = "conf-" + random_hex(6) + ":";
    backend_ = open();
    ASSERT_NE(backend_, nullptr);
  }

  std::unique_ptr<StateBackend> open() {
    auto b = make_state_backend(env_.spec, prefix_);
    EXPECT_TRUE(b.is_ok()) << b.status();
    return b.is_ok() ? std::move(b).value() : nullptr;
  }

  // What a fresh instance (a restarted service) reads back.
  StateBackend::Snapshot reload() {
    auto b = open();
    if (!b) return {};
    auto snap = b->load();
    EXPECT_TRUE(snap.is_ok()) << snap.status();
    return snap.is_ok() ? std::move(snap).value() : StateBackend::Snapshot{};
  }

  Environment env_;
  std::string prefix_;
  std::unique_ptr<StateBackend> backend_;
};

TEST_P(StateBackendConformance, DescribesItselfWithoutSecrets) {
  std::string d = backend_->describe();
  EXPECT_FALSE(d.empty());
  EXPECT_EQ(d.find("conformance-pw"), std::string::npos) << d;
  EXPECT_EQ(d.rfind(GetParam(), 0), 0u) << d;
}

TEST_P(StateBackendConformance, WritesReplaceAndEraseAndLoadHandsBackTheLatest) {
  ASSERT_TRUE(backend_->put_tasks({{"t1", "doc1"}, {"t2", "doc2"}, {"t3", "doc3"}}).is_ok());
  ASSERT_TRUE(backend_->put_tasks({{"t2", "doc2-v2"}}).is_ok());
  ASSERT_TRUE(backend_->erase_tasks({"t3", "never-written"}).is_ok());
  ASSERT_TRUE(backend_->put_tasks({}).is_ok());
  ASSERT_TRUE(backend_->erase_tasks({}).is_ok());
  ASSERT_TRUE(backend_->put_endpoint("e1", "ep1").is_ok());
  ASSERT_TRUE(backend_->put_endpoint("e2", "ep2").is_ok());
  ASSERT_TRUE(backend_->erase_endpoint("e1").is_ok());
  ASSERT_TRUE(backend_->put_idempotency("k1", "i1").is_ok());
  ASSERT_TRUE(backend_->put_idempotency("k2", "i2").is_ok());
  ASSERT_TRUE(backend_->erase_idempotency({"k2"}).is_ok());

  auto snap = reload();
  if (!backend_->durable()) {
    EXPECT_TRUE(snap.tasks.empty() && snap.endpoints.empty() && snap.idempotency.empty());
    return;
  }
  std::multiset<std::string> tasks(snap.tasks.begin(), snap.tasks.end());
  EXPECT_EQ(tasks, (std::multiset<std::string>{"doc1", "doc2-v2"}));
  EXPECT_EQ(snap.endpoints, std::vector<std::string>{"ep2"});
  ASSERT_EQ(snap.idempotency.size(), 1u);
  EXPECT_EQ(snap.idempotency[0], std::make_pair(std::string("k1"), std::string("i1")));
}

TEST_P(StateBackendConformance, BinarySafeDocumentsAndLargeBatchesRoundTrip) {
  std::string odd("a\0b\r\n\xff", 6);
  std::vector<std::pair<std::string, std::string>> docs;
  for (int i = 0; i < 20000; ++i) docs.emplace_back("task-" + std::to_string(i), odd);
  ASSERT_TRUE(backend_->put_tasks(docs).is_ok());
  auto snap = reload();
  if (!backend_->durable()) return;
  ASSERT_EQ(snap.tasks.size(), docs.size());
  for (const auto& d : snap.tasks) ASSERT_EQ(d, odd);
}

TEST_P(StateBackendConformance, KeyPrefixesKeepServicesApart) {
  ASSERT_TRUE(backend_->put_tasks({{"mine", "doc"}}).is_ok());
  auto other = make_state_backend(env_.spec, prefix_ + "other:");
  ASSERT_TRUE(other.is_ok()) << other.status();
  auto snap = (*other)->load();
  ASSERT_TRUE(snap.is_ok());
  EXPECT_TRUE(snap->tasks.empty());
}

TEST_P(StateBackendConformance, AServiceStateRestoresThroughIt) {
  StateLimits limits;
  std::vector<std::string> ids;
  {
    ServiceState state(limits, open());
    ASSERT_TRUE(state.load().is_ok());
    std::vector<ServiceState::Submission> subs(3);
    for (int i = 0; i < 3; ++i) {
      subs[i].spec.endpoint = "edge";
      subs[i].spec.function = "echo";
      subs[i].spec.args = {{"i", i}};
    }
    auto out = state.submit(std::move(subs), "key-1", "digest", "client", "alice");
    ASSERT_TRUE(out.is_ok()) << out.status();
    ids = out->ids;
    ServiceState::ResultIn r;
    r.task_id = ids[0];
    r.result = {{"done", true}};
    std::vector<ServiceState::ResultIn> one;
    one.push_back(std::move(r));
    auto outcomes = state.post_results(std::move(one));
    ASSERT_TRUE(outcomes.is_ok()) << outcomes.status();
    EXPECT_EQ(outcomes->front(), "accepted");
  }
  ServiceState restarted(limits, open());
  ASSERT_TRUE(restarted.load().is_ok());
  if (!restarted.backend().durable()) {
    EXPECT_FALSE(restarted.task_exists(ids[0]));
    return;
  }
  Principal alice{Role::kClient, "alice"}, bob{Role::kClient, "bob"};
  auto done = restarted.task_or_wait(ids[0], nullptr, alice);
  ASSERT_TRUE(done.is_ok()) << done.status();
  EXPECT_EQ((**done)["result"]["done"], true);
  // The owner survived the restart too.
  EXPECT_TRUE(is_permission_denied(restarted.task_or_wait(ids[0], nullptr, bob).status()));
  auto replay = restarted.submit({}, "key-1", "digest", "client", "alice");
  ASSERT_TRUE(replay.is_ok());
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->ids, ids);
}

INSTANTIATE_TEST_SUITE_P(Registered, StateBackendConformance,
                         ::testing::ValuesIn(state_backend_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace flight::faas
