// Security of the REST control plane: TLS with certificates made at test time
// (a CA, a server certificate it signs, and an unrelated CA), scoped tokens
// (admin / client / endpoint roles), token-file parsing, and a Redis state
// backend behind requirepass. All against real sockets and a real redis-server.
#include <thread>

#include <gtest/gtest.h>

#include "flight/faas/auth.h"
#include "flight/faas/endpoint_agent.h"
#include "flight/faas/http_client.h"
#include "flight/faas/rest_invoker.h"
#include "flight/faas/service.h"
#include "flight/faas/state_backend.h"
#include "tests/faas/faas_test_support.h"

namespace flight::faas {
namespace {

using namespace flight::faas::testing;

// Runs the openssl CLI; false (with the reason in the test log) on failure.
bool openssl(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  Subprocess::Options o;
  o.stdout_path = dir.file("openssl.out");
  o.stderr_path = dir.file("openssl.err");
  Subprocess p(args, o);
  int rc = p.wait();
  if (rc != 0) ADD_FAILURE() << "openssl failed: " << flight::testing::read_file(o.stderr_path);
  return rc == 0;
}

// A CA, a certificate for 127.0.0.1 signed by it, and a second, unrelated CA.
struct Pki {
  TempDir dir;
  std::string ca, cert, key, other_ca;
  bool ok = false;

  Pki() {
    ca = dir.file("ca.pem");
    cert = dir.file("server.pem");
    key = dir.file("server.key");
    other_ca = dir.file("other-ca.pem");
    const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt",
                                         "ec_paramgen_curve:prime256v1", "-nodes"};
    auto req = [&](std::vector<std::string> extra) {
      std::vector<std::string> a = {"req"};
      a.insert(a.end(), ec.begin(), ec.end());
      a.insert(a.end(), extra.begin(), extra.end());
      return a;
    };
    std::ofstream(dir.file("ext.cnf")) << "subjectAltName=IP:127.0.0.1\n";
    ok = openssl(dir, req({"-x509", "-days", "1", "-subj", "/CN=flight test CA", "-keyout",
                           dir.file("ca.key"), "-out", ca})) &&
         openssl(dir,
                 req({"-subj", "/CN=127.0.0.1", "-keyout", key, "-out", dir.file("server.csr")})) &&
         openssl(dir, {"x509", "-req", "-days", "1", "-in", dir.file("server.csr"), "-CA", ca,
                       "-CAkey", dir.file("ca.key"), "-CAcreateserial", "-extfile",
                       dir.file("ext.cnf"), "-out", cert}) &&
         openssl(dir, req({"-x509", "-days", "1", "-subj", "/CN=someone else", "-keyout",
                           dir.file("other.key"), "-out", other_ca}));
  }
};

const std::string kAdmin = "admin-token-0123456789abcdef";
const std::string kAlice = "alice-token-0123456789abcdef";
const std::string kBob = "bob-token-0123456789abcdef00";
const std::string kEdge0 = "edge0-token-0123456789abcdef";
const std::string kEdge1 = "edge1-token-0123456789abcdef";

std::string role_file(const TempDir& dir) {
  std::string path = dir.file("tokens");
  std::ofstream(path) << "# token role name\n"
                      << kAdmin << " admin\n"
                      << kAlice << " client alice\n"
                      << kBob << " client bob\n\n"
                      << kEdge0 << " endpoint edge0\n"
                      << kEdge1 << " endpoint edge1\n";
  return path;
}

std::string write_token(const TempDir& dir, const std::string& name, const std::string& token) {
  std::string path = dir.file(name);
  std::ofstream(path) << token << "\n";
  return path;
}

// ---------------------------------------------------------------------------
// TLS

class TlsService : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok);
    ServiceOptions o;
    o.token_file = role_file(dir_);
    o.tls_cert = pki_.cert;
    o.tls_key = pki_.key;
    service_ = std::make_unique<Service>(o);
    Status st = service_->start();
    ASSERT_TRUE(st.is_ok()) << st;
    ASSERT_EQ(service_->url().rfind("https://127.0.0.1:", 0), 0u) << service_->url();
  }

  Pki pki_;
  TempDir dir_;
  std::unique_ptr<Service> service_;
};

TEST_F(TlsService, ClientWithTheRightCaIsServed) {
  HttpClient http(service_->url(), kAlice, pki_.ca);
  auto r =
      http.post_json("/v1/tasks", {{"tasks", {{{"endpoint", "edge0"}, {"function", "noop"}}}}});
  ASSERT_TRUE(r.is_ok()) << r.status();
  EXPECT_EQ(r->status, 201) << r->body;
}

TEST_F(TlsService, WrongCaIsRejected) {
  HttpClient http(service_->url(), kAlice, pki_.other_ca);
  auto r = http.get("/v1/healthz", 10);
  ASSERT_FALSE(r.is_ok()) << "a certificate from another CA was accepted";
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("certificate"), std::string::npos) << r.status();
}

TEST_F(TlsService, PlainHttpToTheTlsPortIsRejected) {
  std::string plain = "http://127.0.0.1:" + std::to_string(service_->port());
  HttpClient http(plain, kAdmin);
  auto r = http.get("/v1/healthz", 10);
  EXPECT_FALSE(r.is_ok() && r->ok()) << "plain HTTP was answered: " << r->body;
  // Raw: the bytes of a plain request get no HTTP response, only a close.
  RawConn c(service_->port(), 10);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all(http_request("GET", "/v1/healthz", "")));
  EXPECT_FALSE(c.read_response().has_value());
}

TEST_F(TlsService, EndpointAgentAndRestInvokerRunTasksOverTls) {
  EndpointAgentOptions eo;
  eo.service_url = service_->url();
  eo.token_file = write_token(dir_, "edge0.token", kEdge0);
  eo.ca_file = pki_.ca;
  eo.name = "edge0";
  eo.poll_wait_s = 1;
  EndpointAgent agent(eo);
  std::thread runner([&] { EXPECT_TRUE(agent.run().is_ok()); });

  RestInvokerOptions ro;
  ro.url = service_->url();
  ro.token_file = write_token(dir_, "alice.token", kAlice);
  ro.ca_file = pki_.ca;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  TaskSpec spec;
  spec.endpoint = "edge0";
  spec.function = "echo";
  spec.args = {{"x", 42}};
  auto result = (*inv)->submit(std::move(spec)).wait();
  EXPECT_EQ(result.state, TaskState::kSucceeded) << result.error;
  EXPECT_EQ(result.result.value("x", 0), 42) << result.result.dump();
  EXPECT_TRUE((*inv)->close().is_ok());
  agent.stop();
  runner.join();
}

TEST(TlsOptions, HalfAKeyPairOrAMissingFileIsAClearError) {
  ServiceOptions o;
  o.token = kAdmin;
  o.tls_cert = "/nonexistent/cert.pem";
  EXPECT_NE(o.validate().message().find("both tls_cert and tls_key"), std::string::npos);
  o.tls_key = "/nonexistent/key.pem";
  Service s(o);
  Status st = s.start();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("/nonexistent/cert.pem"), std::string::npos) << st;
}

// ---------------------------------------------------------------------------
// Roles

class Roles : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions o;
    o.token_file = role_file(dir_);
    service_ = std::make_unique<Service>(o);
    Status st = service_->start();
    ASSERT_TRUE(st.is_ok()) << st;
    port_ = service_->port();
  }

  RawResponse call(const std::string& token, const std::string& method, const std::string& target,
                   const nlohmann::json& body = nullptr,
                   const std::vector<std::string>& headers = {}) {
    return request(port_, method, target, token, body.is_null() ? "" : body.dump(), headers);
  }

  std::string register_as(const std::string& token, const std::string& name) {
    auto r = call(token, "POST", "/v1/endpoints", {{"name", name}, {"functions", {"echo"}}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("id", "");
  }

  std::string submit(const std::string& token, const std::string& endpoint,
                     const std::vector<std::string>& headers = {}) {
    auto r = call(token, "POST", "/v1/tasks",
                  {{"tasks", {{{"endpoint", endpoint}, {"function", "echo"}}}}}, headers);
    EXPECT_EQ(r.status, 201) << r.body;
    auto ids = r.json().value("task_ids", std::vector<std::string>{});
    return ids.empty() ? "" : ids[0];
  }

  TempDir dir_;
  std::unique_ptr<Service> service_;
  int port_ = 0;
};

TEST_F(Roles, EndpointTokenLeasesAndPostsOnlyForItsOwnName) {
  const std::string for_edge1 = submit(kAlice, "edge1");
  const std::string ep0 = register_as(kEdge0, "edge0");
  const std::string ep1 = register_as(kEdge1, "edge1");

  // Registering under another name, leasing through another name's endpoint
  // id, renewing or posting another name's task: 403, and nothing changes.
  EXPECT_EQ(call(kEdge0, "POST", "/v1/endpoints", {{"name", "edge1"}}).status, 403);
  auto stolen = call(kEdge0, "GET", "/v1/endpoints/" + ep1 + "/tasks?wait=0&max=10");
  EXPECT_EQ(stolen.status, 403) << stolen.body;
  EXPECT_EQ(stolen.json()["error"].value("code", ""), "forbidden");
  EXPECT_EQ(call(kEdge0, "GET", "/v1/endpoints/" + ep1).status, 403);
  EXPECT_EQ(call(kEdge0, "DELETE", "/v1/endpoints/" + ep1).status, 403);
  auto forged = call(kEdge0, "POST", "/v1/tasks/" + for_edge1 + "/result", {{"result", 666}});
  EXPECT_EQ(forged.status, 403) << forged.body;
  auto own = call(kEdge0, "GET", "/v1/endpoints/" + ep0 + "/tasks?wait=0&max=10");
  ASSERT_EQ(own.status, 200);
  EXPECT_TRUE(own.json()["tasks"].empty()) << "edge0 leased edge1's task: " << own.body;
  EXPECT_EQ(call(kAdmin, "GET", "/v1/tasks/" + for_edge1).json().value("state", ""), "pending");

  // Endpoints submit and cancel nothing.
  EXPECT_EQ(call(kEdge0, "POST", "/v1/tasks",
                 {{"tasks", {{{"endpoint", "edge0"}, {"function", "echo"}}}}})
                .status,
            403);
  EXPECT_EQ(
      call(kEdge0, "POST", "/v1/tasks/" + for_edge1 + "/cancel", nlohmann::json::object()).status,
      403);

  // The right endpoint leases and posts; the batch route refuses edge0's
  // post for it item by item.
  auto leased = call(kEdge1, "GET", "/v1/endpoints/" + ep1 + "/tasks?wait=0&max=10");
  ASSERT_EQ(leased.status, 200);
  ASSERT_EQ(leased.json()["tasks"].size(), 1u) << leased.body;
  auto batch = call(kEdge0, "POST", "/v1/results",
                    {{"results", {{{"task_id", for_edge1}, {"state", "succeeded"}}}}});
  ASSERT_EQ(batch.status, 200);
  EXPECT_EQ(batch.json()["outcomes"][0].get<std::string>().rfind("forbidden", 0), 0u) << batch.body;
  auto posted = call(kEdge1, "POST", "/v1/tasks/" + for_edge1 + "/result", {{"result", 7}});
  EXPECT_EQ(posted.status, 200) << posted.body;
  EXPECT_EQ(posted.json().value("outcome", ""), "accepted");
  auto view = call(kAlice, "GET", "/v1/tasks/" + for_edge1);
  EXPECT_EQ(view.json().value("result", 0), 7) << view.body;
}

TEST_F(Roles, ClientSeesOnlyItsOwnTasksAndCompletions) {
  const std::string alices = submit(kAlice, "edge0", {"X-Flight-Client: run1"});
  const std::string ep0 = register_as(kEdge0, "edge0");
  ASSERT_EQ(call(kEdge0, "GET", "/v1/endpoints/" + ep0 + "/tasks?wait=0").status, 200);
  ASSERT_EQ(call(kEdge0, "POST", "/v1/tasks/" + alices + "/result", {{"result", "secret"}}).status,
            200);

  auto bob_reads = call(kBob, "GET", "/v1/tasks/" + alices);
  EXPECT_EQ(bob_reads.status, 403) << bob_reads.body;
  EXPECT_EQ(bob_reads.body.find("secret"), std::string::npos);
  auto bob_waits = call(kBob, "POST", "/v1/tasks/wait", {{"ids", {alices}}, {"wait", 0}});
  ASSERT_EQ(bob_waits.status, 200);
  EXPECT_TRUE(bob_waits.json()["tasks"].empty()) << bob_waits.body;
  EXPECT_EQ(bob_waits.json()["unknown"].size(), 1u);
  EXPECT_EQ(call(kBob, "POST", "/v1/tasks/" + alices + "/cancel", nlohmann::json::object()).status,
            403);
  // Same stream name, other client: bob's "run1" is not alice's "run1".
  auto bob_stream = call(kBob, "GET", "/v1/clients/run1/completions?wait=0");
  ASSERT_EQ(bob_stream.status, 200);
  EXPECT_TRUE(bob_stream.json()["tasks"].empty()) << bob_stream.body;

  auto alice_reads = call(kAlice, "GET", "/v1/tasks/" + alices);
  EXPECT_EQ(alice_reads.status, 200);
  EXPECT_EQ(alice_reads.json().value("result", ""), "secret");
  auto alice_stream = call(kAlice, "GET", "/v1/clients/run1/completions?wait=0");
  ASSERT_EQ(alice_stream.json()["tasks"].size(), 1u) << alice_stream.body;
  EXPECT_EQ(call(kAdmin, "GET", "/v1/tasks/" + alices).status, 200);

  // Clients manage no endpoints, post no results, read no metrics.
  EXPECT_EQ(call(kAlice, "POST", "/v1/endpoints", {{"name", "edge0"}}).status, 403);
  EXPECT_EQ(call(kAlice, "POST", "/v1/tasks/" + alices + "/result", {{"result", 1}}).status, 403);
  EXPECT_EQ(call(kAlice, "GET", "/metrics").status, 403);
  EXPECT_EQ(call(kEdge0, "GET", "/metrics").status, 403);
  EXPECT_EQ(call(kAdmin, "GET", "/metrics").status, 200);
}

TEST_F(Roles, IdempotencyKeysAreScopedPerClient) {
  const std::vector<std::string> key = {"Idempotency-Key: same-key"};
  nlohmann::json body = {{"tasks", {{{"endpoint", "edge0"}, {"function", "echo"}}}}};
  auto a = call(kAlice, "POST", "/v1/tasks", body, key);
  auto b = call(kBob, "POST", "/v1/tasks", body, key);
  EXPECT_EQ(a.status, 201);
  EXPECT_EQ(b.status, 201) << "bob's submit replayed alice's: " << b.body;
  EXPECT_NE(a.json()["task_ids"], b.json()["task_ids"]);
  EXPECT_EQ(call(kAlice, "POST", "/v1/tasks", body, key).status, 200);  // alice's own replay
}

TEST_F(Roles, RestInvokerWithAClientTokenRunsTasks) {
  EndpointAgentOptions eo;
  eo.service_url = service_->url();
  eo.token_file = write_token(dir_, "edge0.token", kEdge0);
  eo.name = "edge0";
  eo.poll_wait_s = 1;
  EndpointAgent agent(eo);
  std::thread runner([&] { EXPECT_TRUE(agent.run().is_ok()); });
  RestInvokerOptions ro;
  ro.url = service_->url();
  ro.token = kBob;
  auto inv = make_rest_invoker(ro);
  ASSERT_TRUE(inv.is_ok()) << inv.status();
  std::vector<TaskSpec> specs(20);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].endpoint = "edge0";
    specs[i].function = "echo";
    specs[i].args = {{"i", i}};
  }
  auto handles = (*inv)->submit_batch(std::move(specs));
  for (size_t i = 0; i < handles.size(); ++i) {
    auto r = handles[i].wait();
    EXPECT_EQ(r.state, TaskState::kSucceeded) << r.error;
    EXPECT_EQ(r.result.value("i", -1), static_cast<int>(i));
  }
  EXPECT_TRUE((*inv)->close().is_ok());
  agent.stop();
  runner.join();
}

TEST_F(Roles, AnEndpointRegisteringUnderAnotherNameGivesUpWithTheReason) {
  // The agent's registration is refused (403): it logs and retries with
  // backoff; it never leases.
  EndpointAgentOptions eo;
  eo.service_url = service_->url();
  eo.token = kEdge0;
  eo.name = "edge1";
  eo.max_backoff_s = 0.2;
  EndpointAgent agent(eo);
  std::thread runner([&] { EXPECT_TRUE(agent.run().is_ok()); });
  const std::string t = submit(kAlice, "edge1");
  EXPECT_FALSE(
      wait_until([&] { return !agent.endpoint_id().empty(); }, std::chrono::milliseconds(1000)));
  agent.stop();
  runner.join();
  EXPECT_EQ(call(kAdmin, "GET", "/v1/tasks/" + t).json().value("state", ""), "pending");
}

// ---------------------------------------------------------------------------
// Token files

TEST(TokenTable, ParsesRolesAndNamesEveryMistakeWithItsLine) {
  auto t = TokenTable::parse(kAdmin + " admin\n" + kAlice + " client alice\n", "tokens");
  ASSERT_TRUE(t.is_ok()) << t.status();
  auto who = t->authenticate(kAlice);
  ASSERT_TRUE(who.is_ok());
  EXPECT_EQ(who->role, Role::kClient);
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(t->authenticate(kAdmin)->role, Role::kAdmin);
  EXPECT_EQ(t->authenticate("nope").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(t->authenticate(kAlice.substr(0, kAlice.size() - 1)).status().code(),
            StatusCode::kUnauthenticated);

  auto legacy = TokenTable::parse("  just-one-token \n", "tokens");
  ASSERT_TRUE(legacy.is_ok());
  EXPECT_TRUE(legacy->authenticate("just-one-token")->admin());

  struct Bad {
    std::string text, message;
  };
  for (const Bad& b : std::vector<Bad>{
           {"", "holds no token"},
           {kAdmin + " admin\n" + kAlice + " root\n", "tokens:2: unknown role 'root'"},
           {kAdmin + " admin\n" + kAlice + " client\n", "tokens:2: a client token needs"},
           {kAdmin + " admin x\n" + kAlice + " client a\n", "tokens:1: an admin token takes no"},
           {"short endpoint e\n" + kAdmin + " admin\n", "tokens:1: token is shorter"},
           {kAdmin + " admin\n" + kAdmin + " client a\n", "tokens:2: token listed twice"},
       }) {
    auto r = TokenTable::parse(b.text, "tokens");
    ASSERT_FALSE(r.is_ok()) << b.text;
    EXPECT_NE(r.status().message().find(b.message), std::string::npos) << r.status();
  }
}

TEST(TokenTable, ConstantTimeEqualIsEquality) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
}

// ---------------------------------------------------------------------------
// Redis with requirepass

TEST(RedisPassword, StateBackendAuthenticatesAndRefusesWithoutThePassword) {
  RedisServer redis(false, "redis-pw-1234");
  const std::string base = "127.0.0.1:" + std::to_string(redis.port());
  auto without = make_state_backend("redis://" + base);
  // The connection opens; the first command is refused (NOAUTH).
  if (without.is_ok()) {
    EXPECT_FALSE((*without)->put_endpoint("e", "{}").is_ok());
  }
  auto wrong = make_state_backend("redis://:not-it@" + base);
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().message().find("not-it"), std::string::npos)
      << "password leaked into: " << wrong.status();

  auto b = make_state_backend("redis://:redis-pw-1234@" + base);
  ASSERT_TRUE(b.is_ok()) << b.status();
  EXPECT_EQ((*b)->describe().find("redis-pw-1234"), std::string::npos);
  ASSERT_TRUE((*b)->put_tasks({{"t1", R"({"id":"t1"})"}}).is_ok());
  auto snap = (*b)->load();
  ASSERT_TRUE(snap.is_ok()) << snap.status();
  ASSERT_EQ(snap->tasks.size(), 1u);

  // The service itself on a password-protected Redis.
  ServiceOptions o;
  o.token = kAdmin;
  o.state = "redis://:redis-pw-1234@" + base;
  Service svc(o);
  Status st = svc.start();
  ASSERT_TRUE(st.is_ok()) << st;
  auto h = request(svc.port(), "GET", "/v1/healthz", "");
  EXPECT_EQ(h.body.find("redis-pw-1234"), std::string::npos) << h.body;
}

}  // namespace
}  // namespace flight::faas
