// The REST service: raw-HTTP edge cases against an in-process Service, lease
// redelivery and clean shutdown with real `flight endpoint` processes, and
// Redis-backed state across a service restart.
#include <signal.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "flight/faas/endpoint_agent.h"
#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

const std::string kToken = "s3cret-token-for-tests";

class RestEdgeCases : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions o;
    o.token = kToken;
    o.max_body_bytes = 64 * 1024;
    o.max_queue = 5;
    o.read_timeout_s = 1;
    service_ = std::make_unique<Service>(o);
    ASSERT_TRUE(service_->start().is_ok());
    port_ = service_->port();
    ASSERT_GT(port_, 0);
  }

  RawResponse call(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::vector<std::string>& headers = {}) {
    return request(port_, method, target, kToken, body, headers);
  }

  std::string error_message(const RawResponse& r) {
    auto j = r.json();
    if (!j.is_object() || !j.contains("error")) return "<no JSON error: " + r.body + ">";
    return j["error"].value("message", "");
  }

  std::vector<std::string> submit(const nlohmann::json& tasks, int expect_status = 201) {
    auto r = call("POST", "/v1/tasks", nlohmann::json{{"tasks", tasks}}.dump());
    EXPECT_EQ(r.status, expect_status) << r.body;
    return r.json().value("task_ids", std::vector<std::string>{});
  }

  std::unique_ptr<Service> service_;
  int port_ = 0;
};

TEST_F(RestEdgeCases, HealthzNeedsNoTokenEverythingElseDoes) {
  auto h = request(port_, "GET", "/v1/healthz", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json().value("status", ""), "ok");

  auto none = request(port_, "GET", "/metrics", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(error_message(none).find("missing bearer token"), std::string::npos);
  EXPECT_EQ(none.headers["www-authenticate"], "Bearer");

  auto wrong = request(port_, "POST", "/v1/tasks", "wrong-token", R"({"tasks":[]})");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(error_message(wrong).find("invalid bearer token"), std::string::npos);

  auto basic = request(port_, "GET", "/v1/tasks/x", "", "", {"Authorization: Basic dXNlcjpwdw=="});
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(call("GET", "/metrics").status, 200);
}

TEST_F(RestEdgeCases, MalformedJsonAndWrongTypesAre400WithTheReason) {
  auto malformed = call("POST", "/v1/tasks", R"({"tasks": [)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(error_message(malformed).find("malformed JSON"), std::string::npos);
  EXPECT_EQ(malformed.json()["error"].value("code", ""), "bad_request");

  auto not_array = call("POST", "/v1/tasks", R"({"tasks": "three"})");
  EXPECT_EQ(not_array.status, 400);
  EXPECT_NE(error_message(not_array).find("tasks"), std::string::npos);

  auto bad_field = call("POST", "/v1/tasks", R"({"tasks": [{"endpoint": "e", "function": 5}]})");
  EXPECT_EQ(bad_field.status, 400);
  EXPECT_NE(error_message(bad_field).find("tasks[0].function"), std::string::npos)
      << bad_field.body;

  auto typo = call("POST", "/v1/tasks",
                   R"({"tasks": [{"endpoint": "e", "function": "f", "dedline_s": 1}]})");
  EXPECT_EQ(typo.status, 400);
  EXPECT_NE(error_message(typo).find("did you mean 'deadline_s'"), std::string::npos) << typo.body;

  auto not_object = call("POST", "/v1/endpoints", "[1, 2]");
  EXPECT_EQ(not_object.status, 400);

  auto no_name = call("POST", "/v1/endpoints", R"({"functions": ["noop"]})");
  EXPECT_EQ(no_name.status, 400);
  EXPECT_NE(error_message(no_name).find("name"), std::string::npos);

  auto bad_wait = call("GET", "/v1/tasks/abc?wait=soon");
  EXPECT_EQ(bad_wait.status, 400);
  EXPECT_NE(error_message(bad_wait).find("wait"), std::string::npos);

  auto negative_deadline = call(
      "POST", "/v1/tasks", R"({"tasks": [{"endpoint": "e", "function": "f", "deadline_s": -1}]})");
  EXPECT_EQ(negative_deadline.status, 400);
  // Nothing was queued by any of the rejected requests.
  EXPECT_NE(call("GET", "/metrics").body.find("flight_tasks{state=\"pending\"} 0"),
            std::string::npos);
}

TEST_F(RestEdgeCases, UnknownRoutesIdsAndMethods) {
  EXPECT_EQ(call("GET", "/v1/nothing").status, 404);
  EXPECT_EQ(call("GET", "/").status, 404);
  auto task = call("GET", "/v1/tasks/task-does-not-exist");
  EXPECT_EQ(task.status, 404);
  EXPECT_NE(error_message(task).find("task-does-not-exist"), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/endpoints/ep-nope/tasks?wait=0").status, 404);
  EXPECT_EQ(call("POST", "/v1/tasks/task-nope/result", R"({"result": 1})").status, 404);
  // Invalid UTF-8 in an id (echoed into the error) and in a body.
  EXPECT_EQ(call("GET", "/v1/tasks/%FF%FEbad").status, 404);
  EXPECT_EQ(call("POST", "/v1/tasks", "{\"tasks\": [{\"endpoint\": \"\xff\"}]}").status, 400);
  EXPECT_EQ(call("GET", "/v1/healthz").status, 200);
  auto method = call("DELETE", "/v1/tasks");
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.headers["allow"], "POST");
}

TEST_F(RestEdgeCases, OversizedBodyIs413AndTheServiceKeepsServing) {
  std::string big = R"({"tasks": [{"endpoint": "e", "function": "echo", "args": {"blob": ")" +
                    std::string(100 * 1024, 'x') + R"("}}]})";
  auto r = call("POST", "/v1/tasks", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(error_message(r).find("65536"), std::string::npos) << r.body;
  EXPECT_EQ(call("GET", "/v1/healthz").status, 200);
}

TEST_F(RestEdgeCases, FullEndpointQueueIs429) {
  nlohmann::json five = nlohmann::json::array();
  for (int i = 0; i < 5; ++i) five.push_back({{"endpoint", "busy"}, {"function", "noop"}});
  EXPECT_EQ(submit(five).size(), 5u);
  auto r = call("POST", "/v1/tasks", R"({"tasks": [{"endpoint": "busy", "function": "noop"}]})");
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(error_message(r).find("'busy' queue is full"), std::string::npos) << r.body;
  EXPECT_FALSE(r.headers["retry-after"].empty());
  // Other endpoint names have their own queues.
  EXPECT_EQ(submit({{{"endpoint", "idle"}, {"function", "noop"}}}).size(), 1u);
}

TEST_F(RestEdgeCases, IdempotencyKeyReplaysAndConflicts) {
  const std::string body =
      R"({"tasks": [{"endpoint": "e", "function": "noop"}, {"endpoint": "e", "function": "noop"}]})";
  auto first = call("POST", "/v1/tasks", body, {"Idempotency-Key: key-1"});
  ASSERT_EQ(first.status, 201) << first.body;
  auto again = call("POST", "/v1/tasks", body, {"Idempotency-Key: key-1"});
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json()["task_ids"], first.json()["task_ids"]);
  EXPECT_TRUE(again.json()["replayed"].get<bool>());
  EXPECT_NE(call("GET", "/metrics").body.find("flight_tasks{state=\"pending\"} 2"),
            std::string::npos);

  auto other = call("POST", "/v1/tasks", R"({"tasks": [{"endpoint": "e", "function": "echo"}]})",
                    {"Idempotency-Key: key-1"});
  EXPECT_EQ(other.status, 409);
  auto dup = call(
      "POST", "/v1/tasks",
      R"({"tasks": [{"endpoint": "e", "function": "noop", "id": "mine-1"}, {"endpoint": "e", "function": "noop", "id": "mine-1"}]})");
  EXPECT_EQ(dup.status, 409);
  EXPECT_NE(error_message(dup).find("mine-1"), std::string::npos);
}

TEST_F(RestEdgeCases, SlowClientDoesNotBlockOthersAndGets408) {
  RawConn slow(port_);
  ASSERT_TRUE(
      slow.send_all("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"tas"));
  // Others are served while the slow request sits half-sent, on one kept-alive connection.
  RawConn fast(port_);
  for (int i = 0; i < 20; ++i) {
    auto r = fast.roundtrip(http_request("GET", "/v1/healthz", ""));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  auto timed_out = slow.read_response();  // the service gives up after read_timeout_s
  ASSERT_TRUE(timed_out.has_value());
  EXPECT_EQ(timed_out->status, 408);
  EXPECT_TRUE(slow.closed_by_peer());
  EXPECT_EQ(call("GET", "/v1/healthz").status, 200);
}

TEST_F(RestEdgeCases, EndpointLifecycleLeasesResultsAndMetrics) {
  auto reg = call("POST", "/v1/endpoints",
                  R"({"name": "edge", "functions": ["noop", "echo"], "meta": {"pid": 1}})");
  ASSERT_EQ(reg.status, 201) << reg.body;
  std::string ep = reg.json()["id"];
  EXPECT_EQ(reg.json()["name"], "edge");

  // A long poll in flight is woken by a submission on another connection.
  RawConn poller(port_);
  ASSERT_TRUE(
      poller.send_all(http_request("GET", "/v1/endpoints/" + ep + "/tasks?wait=20&max=5", kToken)));
  auto ids = submit({{{"endpoint", "edge"}, {"function", "echo"}, {"args", {{"v", 7}}}}});
  ASSERT_EQ(ids.size(), 1u);
  auto leased = poller.read_response();
  ASSERT_TRUE(leased.has_value());
  ASSERT_EQ(leased->status, 200) << leased->body;
  auto tasks = leased->json()["tasks"];
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0]["id"], ids[0]);
  EXPECT_EQ(tasks[0]["args"]["v"], 7);
  EXPECT_EQ(tasks[0]["attempt"], 1);

  auto running = call("GET", "/v1/tasks/" + ids[0]);
  EXPECT_EQ(running.json()["state"], "running");
  EXPECT_EQ(running.json()["lease"]["endpoint_id"], ep);

  // Heartbeat renews; unknown ids come back as no longer wanted.
  auto hb = call("POST", "/v1/endpoints/" + ep + "/heartbeat",
                 nlohmann::json{{"task_ids", {ids[0], "task-gone"}}}.dump());
  ASSERT_EQ(hb.status, 200) << hb.body;
  EXPECT_EQ(hb.json()["cancelled"], nlohmann::json::array({"task-gone"}));

  // A waiter on the task is woken by the result; first result wins.
  RawConn waiter(port_);
  ASSERT_TRUE(waiter.send_all(http_request("GET", "/v1/tasks/" + ids[0] + "?wait=20", kToken)));
  auto first = call("POST", "/v1/tasks/" + ids[0] + "/result",
                    R"({"state": "succeeded", "result": {"v": 7}})");
  EXPECT_EQ(first.status, 200);
  EXPECT_TRUE(first.json()["accepted"].get<bool>());
  auto second =
      call("POST", "/v1/tasks/" + ids[0] + "/result", R"({"state": "failed", "error": "late"})");
  EXPECT_EQ(second.status, 200);
  EXPECT_FALSE(second.json()["accepted"].get<bool>());
  auto done = waiter.read_response();
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->json()["state"], "succeeded");
  EXPECT_EQ(done->json()["result"]["v"], 7);

  // Batch status: returns the finished ones, lists the rest.
  auto more = submit({{{"endpoint", "other"}, {"function", "noop"}}});
  auto batch = call("POST", "/v1/tasks/wait",
                    nlohmann::json{{"ids", {ids[0], more[0], "task-unknown"}}, {"wait", 0}}.dump());
  ASSERT_EQ(batch.status, 200) << batch.body;
  EXPECT_EQ(batch.json()["tasks"].size(), 1u);
  EXPECT_EQ(batch.json()["pending"], nlohmann::json::array({more[0]}));
  EXPECT_EQ(batch.json()["unknown"], nlohmann::json::array({"task-unknown"}));

  // Cancel a pending task; it is final.
  auto cancelled = call("POST", "/v1/tasks/" + more[0] + "/cancel");
  EXPECT_EQ(cancelled.json()["state"], "cancelled");

  auto metrics = call("GET", "/metrics").body;
  EXPECT_NE(metrics.find("flight_tasks{state=\"succeeded\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("flight_tasks{state=\"cancelled\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("flight_queue_depth{endpoint=\"edge\"} 0"), std::string::npos);
  EXPECT_NE(metrics.find("flight_endpoints{endpoint=\"edge\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("flight_task_latency_seconds_count 1"), std::string::npos);
  EXPECT_NE(metrics.find("flight_task_latency_seconds_bucket{le=\"+Inf\"} 1"), std::string::npos);

  EXPECT_EQ(call("DELETE", "/v1/endpoints/" + ep).status, 200);
  EXPECT_EQ(call("GET", "/v1/endpoints/" + ep).status, 404);
}

TEST(RestService, OptionsAreValidatedWithClearErrors) {
  auto bad = ServiceOptions::from_json({{"port", 8080}, {"tokne", "x"}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("did you mean 'token'"), std::string::npos);
  auto no_token = ServiceOptions::from_json({{"port", 0}});
  ASSERT_FALSE(no_token.is_ok());
  EXPECT_NE(no_token.status().message().find("token"), std::string::npos);
  ServiceOptions o;
  o.token = "t";
  o.state = "postgres://x";
  Service s(o);
  Status st = s.start();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("postgres"), std::string::npos) << st;
  auto rest = RestInvokerOptions::from_json({{"url", "ftp://x"}, {"token", "t"}});
  ASSERT_FALSE(rest.is_ok());
  EXPECT_NE(rest.status().message().find("http://"), std::string::npos);
  auto ep = EndpointAgentOptions::from_json({{"service_url", "http://x:1"}, {"token", "t"}});
  ASSERT_FALSE(ep.is_ok());
  EXPECT_NE(ep.status().message().find("name"), std::string::npos);
}

TEST(RestService, RestInvokerReportsAWrongToken) {
  ServiceOptions o;
  o.token = kToken;
  Service service(o);
  ASSERT_TRUE(service.start().is_ok());
  RestInvokerOptions ro;
  ro.url = service.url();
  ro.token = "not-the-token";
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok());  // healthz needs no token
  TaskSpec s;
  s.endpoint = "e";
  s.function = "noop";
  TaskResult r = (*inv)->submit(s).wait();
  EXPECT_EQ(r.state, TaskState::kFailed);
  EXPECT_NE(r.error.find("401"), std::string::npos) << r.error;
}

// --- real processes -------------------------------------------------------

TEST(RestProcesses, KilledEndpointsTaskIsRedeliveredToAnotherAndArrivesOnce) {
  RestCluster cluster({"--lease-s", "1"});
  Subprocess& first = cluster.add_endpoint("edge", 2);
  RestInvokerOptions ro;
  ro.url = cluster.url();
  ro.token = cluster.token();
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();

  TempDir scratch;
  const std::string gate = scratch.file("gate");
  std::atomic<int> callbacks{0};
  TaskSpec s;
  s.endpoint = "edge";
  s.function = "wait_file";
  s.args = {{"path", gate}, {"timeout_s", 60}};
  auto handle = (*inv)->submit(s, [&](const TaskResult&) { callbacks++; });

  // Only the first endpoint exists, so it is the one running the task.
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + ".started"); }, std::chrono::seconds(20)));
  EXPECT_EQ(std::stoi(flight::testing::read_file(gate + ".started")), first.pid());
  auto running = cluster.task(handle.id());
  EXPECT_EQ(running["state"], "running");
  EXPECT_EQ(running["attempts"], 1);

  first.signal(SIGKILL);
  EXPECT_EQ(first.wait(), 128 + SIGKILL);
  touch(gate);  // the redelivered run finishes at once
  Subprocess& second = cluster.add_endpoint("edge", 2);

  TaskResult r = handle.wait();
  ASSERT_TRUE(r.ok()) << task_state_name(r.state) << ": " << r.error;
  EXPECT_EQ(r.result["pid"].get<int>(), second.pid());
  auto finished = cluster.task(handle.id());
  EXPECT_EQ(finished["state"], "succeeded");
  EXPECT_EQ(finished["attempts"], 2);
  ASSERT_TRUE((*inv)->close().is_ok());
  EXPECT_EQ(callbacks.load(), 1);
}

TEST(RestProcesses, LeaseExpiryPastTheRetryLimitFailsWithTheReason) {
  RestCluster cluster({"--lease-s", "0.5", "--max-attempts", "1"});
  Subprocess& only = cluster.add_endpoint("edge", 1);
  RestInvokerOptions ro;
  ro.url = cluster.url();
  ro.token = cluster.token();
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  TempDir scratch;
  TaskSpec s;
  s.endpoint = "edge";
  s.function = "wait_file";
  s.args = {{"path", scratch.file("gate")}, {"timeout_s", 60}};
  auto handle = (*inv)->submit(s);
  ASSERT_TRUE(wait_until([&] { return file_exists(scratch.file("gate.started")); },
                         std::chrono::seconds(20)));
  only.signal(SIGKILL);
  TaskResult r = handle.wait();
  EXPECT_EQ(r.state, TaskState::kFailed);
  EXPECT_NE(r.error.find("lease expired 1 time(s)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("retry limit"), std::string::npos) << r.error;
}

TEST(RestProcesses, EndpointFinishesItsTaskAndExitsCleanlyOnSigterm) {
  RestCluster cluster;
  Subprocess& ep = cluster.add_endpoint("edge", 1);
  RestInvokerOptions ro;
  ro.url = cluster.url();
  ro.token = cluster.token();
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  TempDir scratch;
  TaskSpec s;
  s.endpoint = "edge";
  s.function = "wait_file";
  s.args = {{"path", scratch.file("gate")}, {"timeout_s", 60}};
  auto handle = (*inv)->submit(s);
  ASSERT_TRUE(wait_until([&] { return file_exists(scratch.file("gate.started")); },
                         std::chrono::seconds(20)));
  ep.signal(SIGTERM);
  // The service is told the endpoint is leaving only once its task is done.
  touch(scratch.file("gate"));
  TaskResult r = handle.wait();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.result["pid"].get<int>(), ep.pid());
  EXPECT_EQ(ep.wait_for(std::chrono::seconds(20)), 0);
  // No endpoint of that name remains registered.
  auto metrics = request(cluster.port(), "GET", "/metrics", cluster.token()).body;
  EXPECT_EQ(metrics.find("flight_endpoints{endpoint=\"edge\"} 1"), std::string::npos) << metrics;
}

TEST(RestProcesses, EndpointReconnectsAndRegistersAgainAfterAServiceRestart) {
  RestCluster cluster;
  cluster.add_endpoint("edge", 1);
  RestInvokerOptions ro;
  ro.url = cluster.url();
  ro.token = cluster.token();
  TaskSpec s;
  s.endpoint = "edge";
  s.function = "info";
  int64_t pid_before = 0;
  {
    auto inv = make_rest_invoker(ro);
    ASSERT_TRUE(inv.is_ok()) << inv.status();
    TaskResult r = (*inv)->submit(s).wait();
    ASSERT_TRUE(r.ok()) << r.error;
    pid_before = r.result["pid"].get<int64_t>();
  }
  // In-memory state: the new service knows neither the tasks nor the endpoint.
  cluster.restart_service();
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  TaskResult r = (*inv)->submit(s).wait();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.result["pid"].get<int64_t>(), pid_before);  // the same endpoint process
}

TEST(RestProcesses, ServeHelpSaysHowToStartEachPiece) {
  TempDir dir;
  Subprocess::Options o;
  o.stdout_path = dir.file("serve.txt");
  Subprocess serve({FLIGHT_BINARY, "serve", "--help"}, o);
  EXPECT_EQ(serve.wait(), 0);
  std::string text = flight::testing::read_file(dir.file("serve.txt"));
  EXPECT_NE(text.find("--token-file"), std::string::npos);
  EXPECT_NE(text.find("--state"), std::string::npos);
  o.stdout_path = dir.file("endpoint.txt");
  Subprocess endpoint({FLIGHT_BINARY, "endpoint", "--help"}, o);
  EXPECT_EQ(endpoint.wait(), 0);
  EXPECT_NE(flight::testing::read_file(dir.file("endpoint.txt")).find("--service"),
            std::string::npos);
  o.stdout_path = dir.file("bad.txt");
  o.stderr_path = dir.file("bad.err");
  Subprocess bad({FLIGHT_BINARY, "serve", "--port", "0", "--token-file", dir.file("missing")}, o);
  EXPECT_EQ(bad.wait(), 1);
  EXPECT_NE(flight::testing::read_file(dir.file("bad.err")).find("token file"), std::string::npos);
}

// --- durable state --------------------------------------------------------

TEST(RestRedisState, TasksAndResultsSurviveAServiceRestart) {
  RedisServer redis;
  ServiceOptions o;
  o.token = kToken;
  o.state = redis.url();
  o.state_prefix = "flight-test:";
  std::vector<std::string> ids;
  {
    Service service(o);
    ASSERT_TRUE(service.start().is_ok());
    nlohmann::json tasks = nlohmann::json::array();
    for (int i = 0; i < 3; ++i)
      tasks.push_back({{"endpoint", "edge"}, {"function", "echo"}, {"args", {{"i", i}}}});
    auto r = request(service.port(), "POST", "/v1/tasks", kToken,
                     nlohmann::json{{"tasks", tasks}}.dump(), {"Idempotency-Key: restart-key"});
    ASSERT_EQ(r.status, 201) << r.body;
    ids = r.json()["task_ids"].get<std::vector<std::string>>();
    auto res = request(service.port(), "POST", "/v1/tasks/" + ids[0] + "/result", kToken,
                       R"({"state": "succeeded", "result": {"stored": 42}})");
    ASSERT_EQ(res.status, 200) << res.body;
    service.stop();
  }
  Service restarted(o);
  ASSERT_TRUE(restarted.start().is_ok());
  const int port = restarted.port();
  auto stored = request(port, "GET", "/v1/tasks/" + ids[0], kToken).json();
  EXPECT_EQ(stored["state"], "succeeded");
  EXPECT_EQ(stored["result"]["stored"], 42);
  for (int i = 1; i < 3; ++i) {
    auto t = request(port, "GET", "/v1/tasks/" + ids[i], kToken).json();
    EXPECT_EQ(t["state"], "pending") << t;
    EXPECT_EQ(t["args"]["i"], i);
  }
  // The idempotency key survived too: a retried submit does not duplicate.
  nlohmann::json tasks = nlohmann::json::array();
  for (int i = 0; i < 3; ++i)
    tasks.push_back({{"endpoint", "edge"}, {"function", "echo"}, {"args", {{"i", i}}}});
  auto replay = request(port, "POST", "/v1/tasks", kToken, nlohmann::json{{"tasks", tasks}}.dump(),
                        {"Idempotency-Key: restart-key"});
  EXPECT_EQ(replay.status, 200);
  EXPECT_EQ(replay.json()["task_ids"].get<std::vector<std::string>>(), ids);

  // An endpoint started after the restart runs the surviving tasks.
  EndpointAgentOptions eo;
  eo.service_url = restarted.url();
  eo.token = kToken;
  eo.name = "edge";
  eo.poll_wait_s = 1;
  EndpointAgent agent(eo);
  std::thread runner([&] { EXPECT_TRUE(agent.run().is_ok()); });
  for (int i = 1; i < 3; ++i) {
    auto t = request(port, "GET", "/v1/tasks/" + ids[i] + "?wait=20", kToken).json();
    EXPECT_EQ(t["state"], "succeeded") << t;
    EXPECT_EQ(t["result"]["i"], i);
  }
  agent.stop();
  runner.join();
  EXPECT_EQ(agent.tasks_run(), 2u);
}

}  // namespace
}  // namespace flight::faas
