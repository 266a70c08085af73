// Replicated `flight serve`: two replica processes on one real redis-server,
// two `flight endpoint` processes and a RestInvoker given both URLs. The
// leader is SIGKILLed mid-run; the standby takes over from Redis.
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"
#include "flight/faas/state_backend.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

struct Replica {
  std::unique_ptr<Subprocess> proc;
  int port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

Replica start_replica(const TempDir& dir, const std::string& name, const std::string& redis_url) {
  Replica r;
  Subprocess::Options o;
  o.stdout_path = dir.file(name + ".out");
  o.stderr_path = dir.file(name + ".err");
  r.proc = std::make_unique<Subprocess>(
      std::vector<std::string>{FLIGHT_BINARY, "--log-level", "info", "serve", "--port", "0",
                               "--token-file", dir.file("token"), "--state", redis_url,
                               "--state-prefix", "replicas:", "--leader-ttl-s", "1", "--lease-s",
                               "4"},
      o);
  std::string line;
  bool up = wait_until(
      [&] {
        std::string out = flight::testing::read_file(o.stdout_path);
        auto pos = out.find("listening on http://127.0.0.1:");
        if (pos == std::string::npos || out.find('\n', pos) == std::string::npos) return false;
        line = out.substr(pos, out.find('\n', pos) - pos);
        return true;
      },
      std::chrono::seconds(20));
  if (!up) {
    ADD_FAILURE() << name << " did not start: " << flight::testing::read_file(o.stderr_path);
    return r;
  }
  r.port = std::stoi(line.substr(line.rfind(':') + 1));
  return r;
}

std::string role_of(const Replica& r) {
  return request(r.port, "GET", "/v1/healthz", "").json().value("role", "");
}

// Sums "stopped after N tasks" over the endpoints' logs.
uint64_t tasks_run_in_logs(const std::vector<std::string>& paths) {
  uint64_t total = 0;
  std::regex re("stopped after ([0-9]+) tasks");
  for (const auto& p : paths) {
    std::string log = flight::testing::read_file(p);
    std::smatch m;
    EXPECT_TRUE(std::regex_search(log, m, re)) << p << ":\n" << log;
    if (!m.empty()) total += std::stoull(m[1]);
  }
  return total;
}

TEST(ServiceReplicas, KillingTheLeaderMidRunLosesNoTaskAndRunsNoneTwice) {
  RedisServer redis;
  TempDir dir;
  const std::string token = random_hex(32);
  std::ofstream(dir.file("token")) << token << "\n";

  Replica a = start_replica(dir, "replica-a", redis.url());
  ASSERT_GT(a.port, 0);
  ASSERT_TRUE(wait_until([&] { return role_of(a) == "leader"; }, std::chrono::seconds(10)));
  Replica b = start_replica(dir, "replica-b", redis.url());
  ASSERT_GT(b.port, 0);
  EXPECT_EQ(role_of(b), "standby");
  // A standby answers every route with 503 and says so.
  auto refused = request(b.port, "GET", "/v1/tasks/x", token);
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.headers["x-flight-role"], "standby");

  const std::string urls = a.url() + "," + b.url();
  std::vector<std::unique_ptr<Subprocess>> endpoints;
  std::vector<std::string> logs;
  for (int i = 0; i < 2; ++i) {
    Subprocess::Options o;
    logs.push_back(dir.file("endpoint" + std::to_string(i) + ".err"));
    o.stderr_path = logs.back();
    endpoints.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{FLIGHT_BINARY, "--log-level", "info", "endpoint", "--service",
                                 urls, "--token-file", dir.file("token"), "--name", "edge",
                                 "--threads", "2", "--max-backoff-s", "0.3", "--poll-wait-s", "2",
                                 "--grace-s", "20"},
        o));
  }

  RestInvokerOptions ro;
  ro.url = urls;
  ro.token = token;
  ro.poll_wait_s = 1;
  ro.retry_backoff_s = 0.02;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();

  constexpr int kTasks = 200;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<TaskSpec> specs(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    specs[i].endpoint = "edge";
    specs[i].function = "sleep";
    specs[i].args = {{"seconds", 0.1}};
  }
  auto handles = (*inv)->submit_batch(std::move(specs), [&](const TaskResult&) {
    std::lock_guard<std::mutex> lock(mu);
    ++done;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done >= 40; }));
    EXPECT_LT(done, kTasks - 20) << "the run was nearly over before the kill";
  }
  a.proc->signal(SIGKILL);
  EXPECT_EQ(a.proc->wait(), 128 + SIGKILL);

  for (auto& h : handles) {
    TaskResult r = h.wait();
    EXPECT_EQ(r.state, TaskState::kSucceeded) << h.id() << ": " << r.error;
  }
  EXPECT_EQ(role_of(b), "leader");
  EXPECT_TRUE((*inv)->close().is_ok());
  for (auto& e : endpoints) e->signal(SIGTERM);
  for (auto& e : endpoints) EXPECT_EQ(e->wait(), 0);
  // Every task ran to completion exactly once across both endpoints.
  EXPECT_EQ(tasks_run_in_logs(logs), static_cast<uint64_t>(kTasks));
  // The new leader holds every result.
  for (auto& h : handles) {
    auto view = request(b.port, "GET", "/v1/tasks/" + h.id(), token).json();
    ASSERT_EQ(view.value("state", ""), "succeeded") << view;
  }
}

TEST(ServiceReplicas, ACleanStopHandsTheLeadOverAtOnceAndStateFollows) {
  RedisServer redis;
  const std::string token = "replica-clean-stop-token-0123";
  ServiceOptions o;
  o.token = token;
  o.state = redis.url();
  o.leader_ttl_s = 30;  // far beyond the test: only a clean hand-over can be this quick
  Service first(o);
  ASSERT_TRUE(first.start().is_ok());
  Service second(o);
  ASSERT_TRUE(second.start().is_ok());
  EXPECT_EQ(first.role(), "leader");
  EXPECT_EQ(second.role(), "standby");
  auto r = request(first.port(), "POST", "/v1/tasks", token,
                   R"({"tasks": [{"endpoint": "edge", "function": "echo", "id": "t1"}]})");
  ASSERT_EQ(r.status, 201) << r.body;
  first.stop();
  ASSERT_TRUE(wait_until([&] { return second.role() == "leader"; }, std::chrono::seconds(20)));
  auto t = request(second.port(), "GET", "/v1/tasks/t1", token).json();
  EXPECT_EQ(t.value("state", ""), "pending") << t;
}

TEST(ServiceReplicas, AReplicaWhoseLeadWasTakenIsFencedAndStopsServing) {
  RedisServer redis;
  const std::string token = "replica-fence-token-0123456789";
  ServiceOptions o;
  o.token = token;
  o.state = redis.url();
  o.state_prefix = "fence:";
  o.leader_ttl_s = 30;
  Service leader(o);
  ASSERT_TRUE(leader.start().is_ok());
  ASSERT_EQ(leader.role(), "leader");
  // Another holder takes the leader key (as a successor would after a pause).
  auto usurper = make_state_backend(redis.url(), "fence:");
  ASSERT_TRUE(usurper.is_ok());
  Subprocess set(
      {"redis-cli", "-p", std::to_string(redis.port()), "SET", "fence:leader", "usurper"});
  ASSERT_EQ(set.wait(), 0);
  // Its next write is refused: the submit fails and the replica stops serving.
  auto r = request(leader.port(), "POST", "/v1/tasks", token,
                   R"({"tasks": [{"endpoint": "edge", "function": "echo"}]})");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(leader.role(), "fenced");
  EXPECT_EQ(request(leader.port(), "GET", "/v1/tasks/x", token).status, 503);
  auto held = (*usurper)->hold_leadership("usurper", 30);
  ASSERT_TRUE(held.is_ok());
  EXPECT_TRUE(*held);
}

}  // namespace
}  // namespace flight::faas
