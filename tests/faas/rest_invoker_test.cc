// RestInvoker against a real service behind a test proxy that can hold a
// submission in flight and break the completion stream, so the invoker's
// reconcile runs while a POST /v1/tasks has not returned yet.
#include <condition_variable>
#include <thread>

#include <gtest/gtest.h>

#include "flight/faas/endpoint_agent.h"
#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"
#include "tests/faas/fake_http_server.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

const std::string kToken = "reconcile-test-token-0123456789";

// Regression (issue 15, item 9): reconcile asks the service about every
// outstanding id; an id whose POST is still in flight is unknown to the
// service, and was once failed as "lost". It must be skipped until its POST
// returns.
TEST(RestInvokerReconcile, ATaskWhosePostIsInFlightIsNotFailedAsLost) {
  ServiceOptions so;
  so.token = kToken;
  Service service(so);
  ASSERT_TRUE(service.start().is_ok());

  std::mutex mu;
  std::condition_variable cv;
  bool hold_posts = false, post_held = false, release_post = false, break_stream = false;
  size_t waits_after_hold = 0;  // reconcile requests seen while the POST was held
  std::vector<nlohmann::json> reconciled_ids;
  FakeHttpServer proxy([&](const FakeRequest& req) -> FakeReply {
    const bool submit = req.method == "POST" && req.target == "/v1/tasks";
    const bool completions = req.target.find("/completions") != std::string::npos;
    const bool wait = req.target == "/v1/tasks/wait";
    {
      std::unique_lock<std::mutex> lock(mu);
      if (submit && hold_posts) {
        post_held = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release_post; });
      } else if (completions && break_stream) {
        return FakeReply{"", true};  // the stream breaks: the invoker must reconcile
      }
    }
    FakeReply r = forward(service.port(), req);
    if (wait) {
      std::lock_guard<std::mutex> lock(mu);
      if (post_held) {
        ++waits_after_hold;
        reconciled_ids.push_back(nlohmann::json::parse(req.body)["ids"]);
      }
      cv.notify_all();
    }
    return r;
  });

  EndpointAgentOptions eo;
  eo.service_url = service.url();
  eo.token = kToken;
  eo.name = "edge";
  eo.poll_wait_s = 1;
  EndpointAgent agent(eo);
  std::thread runner([&] { EXPECT_TRUE(agent.run().is_ok()); });

  RestInvokerOptions ro;
  ro.url = proxy.url();
  ro.token = kToken;
  ro.poll_wait_s = 0.2;
  ro.retry_backoff_s = 0.01;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();

  // B is acknowledged and keeps running, so reconcile has something to ask about.
  TempDir dir;
  const std::string gate = dir.file("gate");
  TaskSpec b;
  b.endpoint = "edge";
  b.function = "wait_file";
  b.args = {{"path", gate}, {"timeout_s", 60}};
  TaskHandle hb = (*inv)->submit(std::move(b));

  {
    std::lock_guard<std::mutex> lock(mu);
    hold_posts = true;
    break_stream = true;
  }
  TaskHandle ha;
  std::thread submitter([&] {
    TaskSpec a;
    a.endpoint = "edge";
    a.function = "echo";
    a.args = {{"a", 1}};
    ha = (*inv)->submit(std::move(a));  // returns once its POST does
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return post_held; }));
    // Two reconciles while A's POST is held: the second surely started after it.
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return waits_after_hold >= 2; }))
        << "the invoker never reconciled";
    break_stream = false;
    release_post = true;
    cv.notify_all();
  }
  submitter.join();
  touch(gate);

  TaskResult ra = ha.wait();
  EXPECT_EQ(ra.state, TaskState::kSucceeded) << ra.error;
  EXPECT_EQ(ra.result.value("a", 0), 1);
  TaskResult rb = hb.wait();
  EXPECT_EQ(rb.state, TaskState::kSucceeded) << rb.error;
  for (const auto& ids : reconciled_ids) {
    EXPECT_EQ(ids.size(), 1u) << "reconcile asked about an in-flight id: " << ids.dump();
  }
  EXPECT_TRUE((*inv)->close().is_ok());
  agent.stop();
  runner.join();
  proxy.stop();
}

}  // namespace
}  // namespace flight::faas
