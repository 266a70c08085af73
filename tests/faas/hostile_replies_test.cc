// The endpoint agent and the REST invoker against a service that answers
// garbage, truncated bodies, wrong types, huge bodies, slow drips and closed
// sockets (a real socket server in the test, in front of a real Service it
// forwards to when honest). They must log, back off and retry, never die, and
// work again as soon as the service does.
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

const std::string kToken = "hostile-test-token-0123456789";

enum class Mode { kHonest, kGarbage, kNotHttp, kTruncated, kWrongTypes, kHuge, kDrip, kClose };

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kHonest:
      return "honest";
    case Mode::kGarbage:
      return "garbage";
    case Mode::kNotHttp:
      return "not-http";
    case Mode::kTruncated:
      return "truncated";
    case Mode::kWrongTypes:
      return "wrong-types";
    case Mode::kHuge:
      return "huge";
    case Mode::kDrip:
      return "drip";
    case Mode::kClose:
      return "close";
  }
  return "?";
}

// Well-formed HTTP, JSON of the wrong shape for each route.
FakeReply wrong_types(const FakeRequest& req, size_t n) {
  const std::string& t = req.target;
  if (req.method == "POST" && t == "/v1/endpoints") {
    return n % 2 ? http_reply(201, R"({"id": 5, "lease_s": "soon"})")
                 : http_reply(201, R"({"id": "ep-fake", "lease_s": 0.3})");
  }
  if (t.find("/tasks?") != std::string::npos && t.rfind("/v1/endpoints/", 0) == 0) {
    // Now and then "forgotten": the agent registers again, into the replies above.
    if (n % 3 == 0) return http_reply(404, R"({"error": {"message": ["not", "a", "string"]}})");
    return n % 2 ? http_reply(200, R"({"tasks": 7})")
                 : http_reply(200, R"({"tasks": [1, "x", {"id": 3}, {"id": "t", "function": []},
                                       {"id": "ok", "function": "echo", "deadline_at": "never"},
                                       {"id": "real", "function": "echo", "args": {"a": 1}}]})");
  }
  if (t.find("/heartbeat") != std::string::npos) return http_reply(200, R"({"cancelled": 5})");
  if (t == "/v1/results") return http_reply(200, R"([1, 2, 3])");
  if (t.find("/completions") != std::string::npos) {
    return n % 2 ? http_reply(200, R"({"tasks": {"id": 1}})")
                 : http_reply(200, R"({"tasks": [5, {"id": 7, "state": []}]})");
  }
  if (t == "/v1/tasks/wait") return http_reply(200, R"({"tasks": 1, "unknown": [1, null]})");
  if (t == "/v1/tasks") {
    return n % 2 ? http_reply(201, R"(["not", "an", "object"])")
                 : http_reply(400, R"({"error": {"message": 42, "code": []}})");
  }
  return http_reply(200, "null");
}

TEST(HostileReplies, AgentAndInvokerLogBackOffRetryAndRecover) {
  ServiceOptions so;
  so.token = kToken;
  Service service(so);
  ASSERT_TRUE(service.start().is_ok());

  const std::string huge_body(65u << 20, ' ');
  std::mutex mu;
  std::condition_variable cv;
  Mode mode = Mode::kHonest;
  std::map<Mode, size_t> served;
  FakeHttpServer fake([&](const FakeRequest& req) -> FakeReply {
    Mode m;
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu);
      m = mode;
      n = served[m]++;
      cv.notify_all();
    }
    switch (m) {
      case Mode::kHonest:
        return forward(service.port(), req);
      case Mode::kGarbage:
        return http_reply(200, "{{{{ this is not json", "text/plain");
      case Mode::kNotHttp:
        return FakeReply{std::string("\x16\x03\x01\xff\x00garbage\r\n\r\n", 17), true};
      case Mode::kTruncated:
        return FakeReply{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"tasks\": [{\"id\":",
                         true};
      case Mode::kWrongTypes:
        return wrong_types(req, n);
      case Mode::kHuge:
        return http_reply(200, "{\"tasks\": [" + huge_body + "]}");
      case Mode::kDrip: {
        FakeReply r = http_reply(200, R"({"tasks": [], "id": "ep-drip", "lease_s": 30})");
        r.drip_bytes = 1;
        r.drip_gap = std::chrono::milliseconds(40);
        return r;
      }
      case Mode::kClose:
        return FakeReply{"", true};
    }
    return FakeReply{"", true};
  });

  EndpointAgentOptions eo;
  eo.service_url = fake.url();
  eo.token = kToken;
  eo.name = "edge";
  eo.poll_wait_s = 0.2;
  eo.request_timeout_s = 1;
  eo.max_backoff_s = 0.1;
  eo.grace_s = 2;
  EndpointAgent agent(eo);
  Status agent_status = internal_error("run() did not return");
  std::thread runner([&] { agent_status = agent.run(); });

  RestInvokerOptions ro;
  ro.url = fake.url();
  ro.token = kToken;
  ro.request_timeout_s = 1;
  ro.poll_wait_s = 0.2;
  ro.retry_backoff_s = 0.01;
  ro.max_retries = 1;
  ro.retry_timeout_s = 0.3;
  ro.queue_full_timeout_s = 0.3;
  ro.close_timeout_s = 2;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  auto echo = [](int i) {
    TaskSpec s;
    s.endpoint = "edge";
    s.function = "echo";
    s.args = {{"i", i}};
    return s;
  };
  TaskResult first = (*inv)->submit(echo(0)).wait();
  ASSERT_EQ(first.state, TaskState::kSucceeded) << first.error;

  std::vector<TaskHandle> during;
  for (Mode m : {Mode::kGarbage, Mode::kNotHttp, Mode::kTruncated, Mode::kWrongTypes, Mode::kHuge,
                 Mode::kDrip, Mode::kClose}) {
    {
      std::lock_guard<std::mutex> lock(mu);
      mode = m;
    }
    during.push_back((*inv)->submit(echo(static_cast<int>(m))));
    std::unique_lock<std::mutex> lock(mu);
    // Both clients keep coming back: several requests per mode.
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return served[m] >= 8; }))
        << mode_name(m) << ": only " << served[m] << " requests";
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    mode = Mode::kHonest;
  }
  // The service is honest again: both recover without being restarted.
  TaskResult after = (*inv)->submit(echo(99)).wait();
  EXPECT_EQ(after.state, TaskState::kSucceeded) << after.error;
  EXPECT_EQ(after.result.value("i", 0), 99);
  EXPECT_TRUE((*inv)->close().is_ok());
  for (auto& h : during) EXPECT_TRUE(is_terminal(h.wait().state));  // resolved, one way or another
  agent.stop();
  runner.join();
  EXPECT_TRUE(agent_status.is_ok()) << agent_status;
  fake.stop();
}

}  // namespace
}  // namespace flight::faas
