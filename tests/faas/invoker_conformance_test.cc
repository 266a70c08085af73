// One conformance suite for every Invoker: LocalInvoker in-process, and
// RestInvoker against a real `flight serve` with two real `flight endpoint`
// processes (the built FLIGHT_BINARY, on a free loopback port).
#include <atomic>
#include <future>

#include <gtest/gtest.h>

#include "flight/faas/local_invoker.h"
#include "flight/faas/rest_invoker.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

TaskSpec spec(const std::string& function, nlohmann::json args = nlohmann::json::object(),
              double deadline_s = 0) {
  TaskSpec s;
  s.endpoint = "edge";
  s.function = function;
  s.args = std::move(args);
  s.deadline_s = deadline_s;
  return s;
}

class InvokerConformance : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    if (GetParam() == "local") {
      LocalInvokerOptions o;
      o.threads = 4;
      invoker_ = make_local_invoker(o);
      return;
    }
    if (!cluster_) {
      // A short lease so cancellations reach the endpoints quickly (heartbeats at lease/3).
      cluster_ = std::make_unique<RestCluster>(std::vector<std::string>{"--lease-s", "1.5"});
      cluster_->add_endpoint("edge", 4);
      cluster_->add_endpoint("edge", 4);
    }
    RestInvokerOptions o;
    o.url = cluster_->url();
    o.token_file = cluster_->dir().file("token");
    auto inv = make_rest_invoker(o);
    ASSERT_TRUE(inv.is_ok()) << inv.status();
    invoker_ = std::move(inv).value();
  }

  void TearDown() override {
    if (invoker_) {
      EXPECT_TRUE(invoker_->close().is_ok());
    }
  }

  std::string scratch(const std::string& name) { return dir_.file(name); }

  static std::unique_ptr<RestCluster> cluster_;
  std::unique_ptr<Invoker> invoker_;
  TempDir dir_;
};

std::unique_ptr<RestCluster> InvokerConformance::cluster_;

TEST_P(InvokerConformance, ResultsComeBackRight) {
  nlohmann::json args = {
      {"x", 1.5}, {"list", {1, 2, 3}}, {"text", "héllo"}, {"nested", {{"a", nullptr}}}};
  TaskResult echo = invoker_->submit(spec("echo", args)).wait();
  ASSERT_TRUE(echo.ok()) << echo.error;
  EXPECT_EQ(echo.result, args);
  EXPECT_EQ(echo.state, TaskState::kSucceeded);
  EXPECT_FALSE(echo.task_id.empty());
  EXPECT_GT(echo.submitted_at, 0);
  EXPECT_GE(echo.finished_at, echo.submitted_at);

  TaskResult noop = invoker_->submit(spec("noop")).wait();
  ASSERT_TRUE(noop.ok()) << noop.error;
  EXPECT_TRUE(noop.result.is_null());

  TaskResult info = invoker_->submit(spec("info")).wait();
  ASSERT_TRUE(info.ok()) << info.error;
  EXPECT_TRUE(info.result.contains("pid"));
}

TEST_P(InvokerConformance, ErrorsPropagateWithTheirMessage) {
  TaskResult failed = invoker_->submit(spec("fail", {{"message", "disk on fire 42"}})).wait();
  EXPECT_EQ(failed.state, TaskState::kFailed);
  EXPECT_NE(failed.error.find("disk on fire 42"), std::string::npos) << failed.error;

  TaskResult thrown =
      invoker_->submit(spec("fail", {{"message", "thrown 7"}, {"throw", true}})).wait();
  EXPECT_EQ(thrown.state, TaskState::kFailed);
  EXPECT_NE(thrown.error.find("thrown 7"), std::string::npos) << thrown.error;

  TaskResult unknown = invoker_->submit(spec("eccho")).wait();
  EXPECT_EQ(unknown.state, TaskState::kFailed);
  EXPECT_NE(unknown.error.find("unknown function 'eccho'"), std::string::npos) << unknown.error;
  EXPECT_NE(unknown.error.find("did you mean 'echo'"), std::string::npos) << unknown.error;

  TaskResult bad_args = invoker_->submit(spec("sleep", {{"seconds", "ten"}})).wait();
  EXPECT_EQ(bad_args.state, TaskState::kFailed);
  EXPECT_NE(bad_args.error.find("seconds"), std::string::npos) << bad_args.error;
}

TEST_P(InvokerConformance, DeadlineFiresWhileTheFunctionStillRuns) {
  // The function would wait a minute for a file nobody creates; the future
  // must resolve at the deadline regardless.
  std::string path = scratch("never");
  TaskResult r =
      invoker_->submit(spec("wait_file", {{"path", path}, {"timeout_s", 60}}, 0.3)).wait();
  EXPECT_EQ(r.state, TaskState::kDeadlineExceeded);
  EXPECT_NE(r.error.find("deadline"), std::string::npos) << r.error;
  // A task with a generous deadline is unaffected.
  TaskResult ok = invoker_->submit(spec("echo", {{"v", 1}}, 60)).wait();
  EXPECT_TRUE(ok.ok()) << ok.error;
}

TEST_P(InvokerConformance, BatchOfThousandTasksCompletes) {
  std::vector<TaskSpec> specs;
  for (int i = 0; i < 1000; ++i) specs.push_back(spec("echo", {{"i", i}}));
  std::atomic<int> callbacks{0};
  auto handles = invoker_->submit_batch(std::move(specs), [&](const TaskResult& r) {
    if (r.ok()) callbacks.fetch_add(1);
  });
  ASSERT_EQ(handles.size(), 1000u);
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    TaskResult r = handles[i].wait();
    ASSERT_TRUE(r.ok()) << i << ": " << r.error;
    EXPECT_EQ(r.result.at("i").get<int>(), i);
    EXPECT_EQ(r.task_id, handles[i].id());
    ids.insert(r.task_id);
  }
  EXPECT_EQ(ids.size(), 1000u);
  // Callbacks run before futures are fulfilled, so all have run by now.
  EXPECT_EQ(callbacks.load(), 1000);
}

TEST_P(InvokerConformance, CancelResolvesAPendingOrRunningTask) {
  std::string path = scratch("gate");
  auto running = invoker_->submit(spec("wait_file", {{"path", path}, {"timeout_s", 60}}));
  ASSERT_TRUE(wait_until([&] { return file_exists(path + ".started"); }, std::chrono::seconds(20)))
      << "the task never started";
  invoker_->cancel(running.id());
  TaskResult r = running.wait();
  EXPECT_EQ(r.state, TaskState::kCancelled);
  EXPECT_NE(r.error.find("cancel"), std::string::npos) << r.error;
  invoker_->cancel(running.id());       // a second cancel is harmless
  invoker_->cancel("no-such-task-id");  // unknown ids are ignored
  // The cancelled function stops (cooperatively), so the invoker keeps serving.
  TaskResult after = invoker_->submit(spec("echo", {{"after", true}})).wait();
  EXPECT_TRUE(after.ok()) << after.error;
}

TEST_P(InvokerConformance, CallbacksMaySubmitFollowUpTasks) {
  // The engine's aggregation chain: each result submits the next task.
  std::promise<int> done;
  std::function<void(const TaskResult&)> next = [&](const TaskResult& r) {
    if (!r.ok()) {
      done.set_value(-1);
      return;
    }
    int k = r.result.at("k").get<int>();
    if (k == 30) {
      done.set_value(k);
      return;
    }
    invoker_->submit(spec("echo", {{"k", k + 1}}), next);
  };
  invoker_->submit(spec("echo", {{"k", 0}}), next);
  EXPECT_EQ(done.get_future().get(), 30);
}

TEST_P(InvokerConformance, CallbackRunsExactlyOncePerTask) {
  std::atomic<int> calls{0};
  std::string path = scratch("never2");
  auto h1 = invoker_->submit(spec("noop"), [&](const TaskResult&) { calls++; });
  auto h2 = invoker_->submit(spec("wait_file", {{"path", path}, {"timeout_s", 60}}, 0.2),
                             [&](const TaskResult&) { calls++; });
  auto h3 = invoker_->submit(spec("fail"), [&](const TaskResult&) { calls++; });
  h1.wait();
  h2.wait();
  h3.wait();
  EXPECT_TRUE(invoker_->close().is_ok());  // joins every invoker thread
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(h2.wait().state, TaskState::kDeadlineExceeded);
}

INSTANTIATE_TEST_SUITE_P(Invokers, InvokerConformance, ::testing::Values("local", "rest"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace flight::faas
