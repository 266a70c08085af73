// LocalInvoker specifics (backpressure, shared pool) and the function registry.
#include <atomic>
#include <fstream>
#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "flight/faas/functions.h"
#include "flight/faas/local_invoker.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

int thread_count() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

TaskSpec gate_task(const std::string& path) {
  TaskSpec s;
  s.endpoint = "w0";
  s.function = "wait_file";
  s.args = {{"path", path}, {"timeout_s", 60}};
  return s;
}

TaskSpec noop_on(const std::string& endpoint) {
  TaskSpec s;
  s.endpoint = endpoint;
  s.function = "noop";
  return s;
}

TEST(LocalInvoker, TenThousandVirtualEndpointsShareASmallPool) {
  const int before = thread_count();
  LocalInvokerOptions o;
  o.threads = 2;
  auto inv = make_local_invoker(o);
  std::vector<TaskSpec> specs;
  for (int i = 0; i < 10000; ++i) {
    TaskSpec s;
    s.endpoint = "worker-" + std::to_string(i);
    s.function = "echo";
    s.args = {{"worker", i}};
    specs.push_back(std::move(s));
  }
  auto handles = inv->submit_batch(std::move(specs));
  // Pool threads plus one deadline timer, however many endpoints there are.
  EXPECT_LE(thread_count() - before, 3);
  for (int i = 0; i < 10000; ++i) {
    auto r = handles[i].wait();
    ASSERT_TRUE(r.ok()) << r.error;
    ASSERT_EQ(r.result["worker"], i);
  }
}

TEST(LocalInvoker, FullQueueRejectsWhenConfiguredNotToBlock) {
  TempDir dir;
  LocalInvokerOptions o;
  o.threads = 1;
  o.max_queue = 2;
  o.block_when_full = false;
  auto inv = make_local_invoker(o);
  auto blocker = inv->submit(gate_task(dir.file("gate")));
  ASSERT_TRUE(
      wait_until([&] { return file_exists(dir.file("gate.started")); }, std::chrono::seconds(10)));
  auto q1 = inv->submit(noop_on("a"));
  auto q2 = inv->submit(noop_on("b"));
  auto rejected = inv->submit(noop_on("c")).wait();  // resolved at once
  EXPECT_EQ(rejected.state, TaskState::kFailed);
  EXPECT_NE(rejected.error.find("queue full"), std::string::npos) << rejected.error;
  touch(dir.file("gate"));
  EXPECT_TRUE(blocker.wait().ok());
  EXPECT_TRUE(q1.wait().ok());
  EXPECT_TRUE(q2.wait().ok());
}

TEST(LocalInvoker, BlockedSubmitterProceedsWhenTheQueueDrains) {
  TempDir dir;
  LocalInvokerOptions o;
  o.threads = 1;
  o.max_queue = 1;
  auto inv = make_local_invoker(o);
  auto blocker = inv->submit(gate_task(dir.file("gate")));
  ASSERT_TRUE(
      wait_until([&] { return file_exists(dir.file("gate.started")); }, std::chrono::seconds(10)));
  auto queued = inv->submit(noop_on("a"));
  std::promise<TaskHandle> submitted;
  std::thread submitter(
      [&] { submitted.set_value(inv->submit(noop_on("b"))); });  // blocks: queue full
  auto fut = submitted.get_future();
  EXPECT_EQ(fut.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  touch(dir.file("gate"));
  EXPECT_TRUE(fut.get().wait().ok());
  submitter.join();
  EXPECT_TRUE(queued.wait().ok());
  EXPECT_TRUE(blocker.wait().ok());
}

TEST(LocalInvoker, CallbackSubmittingIntoAFullQueueDoesNotDeadlock) {
  TempDir dir;
  LocalInvokerOptions o;
  o.threads = 1;
  o.max_queue = 1;
  auto inv = make_local_invoker(o);
  std::promise<TaskHandle> chained;
  // The blocker's callback runs on the only pool thread while the queue is full.
  auto blocker = inv->submit(gate_task(dir.file("gate")), [&](const TaskResult&) {
    chained.set_value(inv->submit(noop_on("chained")));
  });
  ASSERT_TRUE(
      wait_until([&] { return file_exists(dir.file("gate.started")); }, std::chrono::seconds(10)));
  auto queued = inv->submit(noop_on("fills-the-queue"));
  touch(dir.file("gate"));
  EXPECT_TRUE(blocker.wait().ok());
  EXPECT_TRUE(chained.get_future().get().wait().ok());
  EXPECT_TRUE(queued.wait().ok());
}

TEST(LocalInvoker, QueuedTasksStartByPriorityThenInSubmissionOrder) {
  TempDir dir;
  LocalInvokerOptions o;
  o.threads = 1;
  auto inv = make_local_invoker(o);
  auto blocker = inv->submit(gate_task(dir.file("gate")));
  ASSERT_TRUE(
      wait_until([&] { return file_exists(dir.file("gate.started")); }, std::chrono::seconds(10)));
  // Queued behind the blocker: two normal, then two urgent tasks, then one
  // more urgent still. The only thread records the order they start in.
  std::mutex mu;
  std::vector<std::string> started;
  std::vector<TaskHandle> handles;
  for (const auto& [name, priority] : std::vector<std::pair<std::string, int>>{
           {"n1", 0}, {"n2", 0}, {"u1", 1}, {"u2", 1}, {"v1", 2}}) {
    TaskSpec s = noop_on(name);
    s.priority = priority;
    handles.push_back(inv->submit(std::move(s), [&, name = name](const TaskResult&) {
      std::lock_guard<std::mutex> lock(mu);
      started.push_back(name);
    }));
  }
  touch(dir.file("gate"));
  EXPECT_TRUE(blocker.wait().ok());
  for (auto& h : handles) EXPECT_TRUE(h.wait().ok());
  EXPECT_EQ(started, (std::vector<std::string>{"v1", "u1", "u2", "n1", "n2"}));
}

TEST(LocalInvoker, CloseFinishesQueuedWorkAndRejectsNewWork) {
  LocalInvokerOptions o;
  o.threads = 1;
  auto inv = make_local_invoker(o);
  std::vector<TaskHandle> hs;
  for (int i = 0; i < 50; ++i) hs.push_back(inv->submit(noop_on("e")));
  ASSERT_TRUE(inv->close().is_ok());
  for (auto& h : hs) {
    auto f = h.future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_TRUE(f.get().ok());
  }
  auto late = inv->submit(noop_on("e")).wait();
  EXPECT_EQ(late.state, TaskState::kFailed);
  EXPECT_NE(late.error.find("closed"), std::string::npos);
  EXPECT_TRUE(inv->close().is_ok());  // idempotent
}

TEST(LocalInvoker, OptionsParseFromJsonWithClearErrors) {
  auto ok = LocalInvokerOptions::from_json({{"threads", 8}, {"max_queue", 10}});
  ASSERT_TRUE(ok.is_ok()) << ok.status();
  EXPECT_EQ(ok->threads, 8u);
  EXPECT_EQ(ok->max_queue, 10u);
  EXPECT_EQ(LocalInvokerOptions::from_json(ok->to_json())->to_json(), ok->to_json());
  auto typo = LocalInvokerOptions::from_json({{"thread", 8}});
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("did you mean 'threads'"), std::string::npos);
  auto zero = LocalInvokerOptions::from_json({{"threads", 0}});
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.status().message().find("threads"), std::string::npos);
  auto type = LocalInvokerOptions::from_json({{"max_queue", "big"}});
  ASSERT_FALSE(type.is_ok());
  EXPECT_NE(type.status().message().find("max_queue"), std::string::npos);
}

TEST(FunctionRegistry, AddReplacesFindSuggestsAndUserFunctionsRun) {
  FunctionRegistry reg;
  add_builtin_functions(reg);
  EXPECT_TRUE(reg.contains("noop"));
  reg.add("train", [](const nlohmann::json& a, const TaskContext&) -> StatusOr<nlohmann::json> {
    return nlohmann::json{{"version", 1}, {"round", a.at("round")}};
  });
  reg.add("train", [](const nlohmann::json& a, const TaskContext& ctx) -> StatusOr<nlohmann::json> {
    return nlohmann::json{{"version", 2}, {"round", a.at("round")}, {"endpoint", ctx.endpoint}};
  });
  auto missing = reg.find("trian");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("did you mean 'train'"), std::string::npos);

  LocalInvokerOptions o;
  auto inv = make_local_invoker(o, reg);
  TaskSpec s;
  s.endpoint = "worker-3";
  s.function = "train";
  s.args = {{"round", 5}};
  auto r = inv->submit(s).wait();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.result["version"], 2);
  EXPECT_EQ(r.result["round"], 5);
  EXPECT_EQ(r.result["endpoint"], "worker-3");
  auto names = reg.names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(TaskTypes, JsonRoundTripsAndStateNames) {
  TaskResult r;
  r.task_id = "t1";
  r.state = TaskState::kDeadlineExceeded;
  r.error = "late";
  r.submitted_at = 1;
  r.finished_at = 2;
  auto back = TaskResult::from_json(r.to_json());
  ASSERT_TRUE(back.is_ok()) << back.status();
  EXPECT_EQ(back->state, TaskState::kDeadlineExceeded);
  EXPECT_EQ(back->error, "late");
  auto bad = parse_task_state("succeded");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("did you mean 'succeeded'"), std::string::npos);
  auto spec = TaskSpec::from_json({{"endpoint", "e"}});
  ASSERT_FALSE(spec.is_ok());
  EXPECT_NE(spec.status().message().find("function"), std::string::npos);
}

}  // namespace
}  // namespace flight::faas
