// Shared parts of batches (shared_json.h) and their REST wire form: the
// service stores, leases and reports tasks whose args and results came with a
// "shared" part, and a RestInvoker + `flight endpoint` round trip gives every
// function exactly its own args and the caller exactly its own result.
#include <gtest/gtest.h>

#include "flight/faas/endpoint_agent.h"
#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"
#include "flight/faas/shared_json.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;
using json = nlohmann::json;

json train_like(int i) {
  json connector = {{"kind", "redis"}, {"host", "127.0.0.1"}, {"port", 6379}};
  return {{"job_id", "job-1"},
          {"round", 3},
          {"node", "worker-" + std::to_string(i)},
          {"worker_index", i},
          {"model", {{"connector", connector}, {"key", "k-model"}, {"size", 100}}},
          {"update", {{"connector", connector}, {"key", "k-" + std::to_string(i)}, {"size", 100}}},
          {"empty", json::object()},
          {"list", {1, 2, i}}};
}

TEST(SharedJson, FactorThenMergeGivesBackEveryDocument) {
  std::vector<json> docs, originals;
  for (int i = 0; i < 5; ++i) docs.push_back(train_like(i));
  originals = docs;
  std::vector<json*> ptrs;
  for (auto& d : docs) ptrs.push_back(&d);
  json shared = factor_shared(ptrs);
  ASSERT_TRUE(shared.is_object());
  EXPECT_EQ(shared["job_id"], "job-1");
  EXPECT_EQ(shared["model"], originals[0]["model"]);
  // An object that differs shares its common keys only.
  EXPECT_EQ(shared["update"]["connector"], originals[0]["update"]["connector"]);
  EXPECT_FALSE(shared["update"].contains("key"));
  EXPECT_FALSE(shared.contains("node"));
  EXPECT_FALSE(shared.contains("list"));  // arrays are compared whole
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_FALSE(docs[i].contains("job_id"));
    EXPECT_FALSE(docs[i].contains("model"));
    EXPECT_EQ(docs[i]["update"], json({{"key", "k-" + std::to_string(i)}}));
    EXPECT_EQ(merge_shared(shared, docs[i]), originals[i]) << i;
  }
}

TEST(SharedJson, NothingToShareLeavesTheDocumentsAlone) {
  json a = {{"x", 1}}, b = {{"x", 2}}, c = json::array({1}), one = {{"x", 1}};
  EXPECT_TRUE(factor_shared({&a, &b}).is_null());
  EXPECT_EQ(a, json({{"x", 1}}));
  EXPECT_TRUE(factor_shared({&a, &c}).is_null());  // not all objects
  EXPECT_TRUE(factor_shared({&one}).is_null());    // fewer than two
  json missing = json::object();
  EXPECT_TRUE(factor_shared({&a, &missing}).is_null());
  // Own values win over shared ones; null own = absent.
  EXPECT_EQ(merge_shared({{"x", 1}, {"y", {{"a", 1}}}}, {{"x", 2}, {"y", {{"b", 2}}}}),
            json({{"x", 2}, {"y", {{"a", 1}, {"b", 2}}}}));
  EXPECT_EQ(merge_shared({{"x", 1}}, nullptr), json({{"x", 1}}));
}

const std::string kToken = "s3cret-token-for-shared-tests";

class SharedOverRest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions o;
    o.token = kToken;
    service_ = std::make_unique<Service>(o);
    ASSERT_TRUE(service_->start().is_ok());
    port_ = service_->port();
  }
  RawResponse call(const std::string& method, const std::string& target,
                   const std::string& body = "") {
    return request(port_, method, target, kToken, body);
  }
  std::unique_ptr<Service> service_;
  int port_ = 0;
};

TEST_F(SharedOverRest, LeaseCarriesTheSharedPartOnceAndViewsAreMerged) {
  auto reg = call("POST", "/v1/endpoints", R"({"name": "edge", "functions": ["echo"]})");
  ASSERT_EQ(reg.status, 201) << reg.body;
  std::string ep = reg.json()["id"];
  json body = {
      {"shared", {{"s", {{"job", "j"}, {"model", {{"key", "m"}, {"size", 9}}}}}}},
      {"tasks",
       {{{"endpoint", "edge"}, {"function", "echo"}, {"args", {{"i", 0}}}, {"shared", "s"}},
        {{"endpoint", "edge"},
         {"function", "echo"},
         {"args", {{"i", 1}, {"model", {{"key", "m1"}}}}},
         {"shared", "s"}},
        {{"endpoint", "edge"}, {"function", "echo"}, {"shared", "s"}}}}};
  auto sub = call("POST", "/v1/tasks", body.dump());
  ASSERT_EQ(sub.status, 201) << sub.body;
  auto ids = sub.json()["task_ids"];

  auto view = call("GET", "/v1/tasks/" + ids[1].get<std::string>());
  EXPECT_EQ(view.json()["args"],
            json({{"i", 1}, {"job", "j"}, {"model", {{"key", "m1"}, {"size", 9}}}}));

  auto leased = call("GET", "/v1/endpoints/" + ep + "/tasks?wait=0&max=10");
  ASSERT_EQ(leased.status, 200) << leased.body;
  json l = leased.json();
  ASSERT_EQ(l["tasks"].size(), 3u);
  ASSERT_EQ(l["shared"].size(), 1u);
  std::string sid = l["tasks"][0]["shared"];
  EXPECT_EQ(l["shared"][sid], body["shared"]["s"]);
  EXPECT_EQ(l["tasks"][0]["args"], json({{"i", 0}}));

  // Results with a shared part: completions carry it once, views merge it.
  std::string client = "c1";
  json results = {
      {"shared", {{"r", {{"update", {{"connector", {{"kind", "redis"}}}, {"size", 9}}}}}}},
      {"results",
       {{{"task_id", ids[0]},
         {"state", "succeeded"},
         {"result", {{"update", {{"key", "u0"}}}}},
         {"shared", "r"}},
        {{"task_id", ids[1]}, {"state", "succeeded"}, {"result", {{"n", 1}}}, {"shared", "r"}}}}};
  auto posted = call("POST", "/v1/results", results.dump());
  ASSERT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(posted.json()["outcomes"], json::array({"accepted", "accepted"}));
  auto done = call("GET", "/v1/tasks/" + ids[0].get<std::string>());
  EXPECT_EQ(done.json()["result"],
            json({{"update", {{"connector", {{"kind", "redis"}}}, {"key", "u0"}, {"size", 9}}}}));

  auto bad = call(
      "POST", "/v1/tasks",
      json{{"tasks", {{{"endpoint", "edge"}, {"function", "echo"}, {"shared", "nope"}}}}}.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("'nope' is not in the request's"), std::string::npos) << bad.body;
  auto not_object = call(
      "POST", "/v1/tasks",
      json{{"shared", {{"s", {{"a", 1}}}}},
           {"tasks", {{{"endpoint", "edge"}, {"function", "echo"}, {"args", 5}, {"shared", "s"}}}}}
          .dump());
  EXPECT_EQ(not_object.status, 400) << not_object.body;
  auto bad_shared =
      call("POST", "/v1/results", json{{"shared", {{"r", 1}}}, {"results", json::array()}}.dump());
  EXPECT_EQ(bad_shared.status, 400) << bad_shared.body;
}

// The whole path: RestInvoker factors a batch's common args, the endpoint
// agent merges them back and factors its results, the invoker merges those.
TEST_F(SharedOverRest, InvokerAndEndpointRoundTripExactArgsAndResults) {
  EndpointAgentOptions eo;
  eo.service_url = service_->url();
  eo.token = kToken;
  eo.name = "edge";
  eo.threads = 2;
  EndpointAgent agent(eo);
  std::thread runner([&] { (void)agent.run(); });
  RestInvokerOptions ro;
  ro.url = service_->url();
  ro.token = kToken;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  std::vector<TaskSpec> specs;
  for (int i = 0; i < 50; ++i) {
    TaskSpec s;
    s.endpoint = "edge";
    s.function = "echo";
    s.args = train_like(i);
    specs.push_back(std::move(s));
  }
  auto handles = (*inv)->submit_batch(specs);
  for (int i = 0; i < 50; ++i) {
    TaskResult r = handles[i].wait();
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.result, train_like(i)) << i;
  }
  ASSERT_TRUE((*inv)->close().is_ok());
  agent.stop();
  runner.join();
}

}  // namespace
}  // namespace flight::faas
