// End-to-end runs of the engine on real Fashion-MNIST (small budgets): tiers,
// hierarchical == flat, resume == uninterrupted, determinism, failures,
// deadlines, and the distributed deployment (REST + redis + endpoint
// processes) against the embedded one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <signal.h>

#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/job.h"
#include "flight/engine/job_cache.h"
#include "flight/engine/metrics.h"
#include "flight/engine/task_process.h"
#include "flight/engine/tasks.h"
#include "flight/faas/functions.h"
#include "flight/faas/service.h"
#include "tests/engine/params_diff.h"
#include "tests/engine/run_rows.h"
#include "tests/engine/topologies.h"
#include "tests/support/process.h"

namespace flight::engine {
namespace {

namespace fs = std::filesystem;

class RunTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  }

  // A small but real experiment: MLP on Fashion-MNIST, 15 SGD steps per task.
  ExperimentConfig config(const std::string& topology_text, const std::string& name,
                          std::vector<std::string> overrides = {}) {
    write("topo-" + name + ".yaml", topology_text);
    std::string cfg = "name: " + name + "\nseed: 7\ntopology: topo-" + name + ".yaml\n" + R"(
model: {name: mlp}
data:
  dataset: fashion_mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 15}
strategy: {name: fedavg, participation: 1.0}
rounds: 3
threads: 2
)";
    overrides.push_back("output.dir=" + dir_.file("out-" + name));
    auto c = ExperimentConfig::load(write(name + ".yaml", cfg), overrides);
    EXPECT_TRUE(c.is_ok()) << c.status();
    return *c;
  }

  RunOptions quiet() {
    RunOptions o;
    o.quiet = true;
    return o;
  }

  testing::TempDir dir_;
};

TEST_F(RunTest, ThreeTierRunWritesEveryOutputAndAccuracyRises) {
  auto c = config(kThreeTier, "three");
  auto s = run_experiment(c, quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  EXPECT_EQ(s->rounds_completed, 3);
  for (const char* f : {"rounds.csv", "tasks.csv", "summary.json", "config.yaml", "model.pt",
                        "accuracy.svg", "checkpoints/LATEST"}) {
    EXPECT_TRUE(fs::exists(s->output_dir + "/" + f)) << f;
  }
  auto rows = rounds(*s);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GT(rows.back().test_accuracy, 0.55);
  EXPECT_GT(rows.back().test_accuracy, rows.front().test_accuracy - 0.02);
  EXPECT_DOUBLE_EQ(s->final_accuracy, rows.back().test_accuracy);
  // 8 train + 2 aggregate tasks per round.
  std::ifstream tasks(s->output_dir + "/tasks.csv");
  std::string line;
  int n = -1, aggregates = 0;
  while (std::getline(tasks, line)) {
    ++n;
    if (line.find(",aggregate,") != std::string::npos) ++aggregates;
  }
  EXPECT_EQ(n, 30);
  EXPECT_EQ(aggregates, 6);
  // The resolved config loads back.
  auto resolved = ExperimentConfig::load(s->output_dir + "/config.yaml");
  EXPECT_TRUE(resolved.is_ok()) << resolved.status();
}

TEST_F(RunTest, TwoTierRunLearns) {
  auto c = config(kFlat, "two", {"rounds=2"});
  auto s = run_experiment(c, quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  auto rows = rounds(*s);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_GT(s->final_accuracy, 0.5);
  EXPECT_EQ(rows[0].selected, 8);
  EXPECT_EQ(rows[0].returned, 8);
}

TEST_F(RunTest, HierarchicalFedAvgEqualsFlatFedAvg) {
  auto hier = run_experiment(config(kThreeTier, "hier", {"rounds=2"}), quiet());
  auto flat = run_experiment(config(kFlat, "flat", {"rounds=2"}), quiet());
  ASSERT_TRUE(hier.is_ok()) << hier.status();
  ASSERT_TRUE(flat.is_ok()) << flat.status();
  EXPECT_LT(max_rel_diff(hier->final_model, flat->final_model), 1e-5);
  // And the tree really changed the traffic: the coordinator read 2 partial
  // aggregates instead of 8 updates.
  auto h = rounds(*hier), f = rounds(*flat);
  ASSERT_FALSE(h.empty());
}

TEST_F(RunTest, SameSeedGivesBitIdenticalRounds) {
  auto a = run_experiment(config(kThreeTier, "det-a", {"strategy.participation=0.5"}), quiet());
  auto b = run_experiment(config(kThreeTier, "det-b", {"strategy.participation=0.5"}), quiet());
  ASSERT_TRUE(a.is_ok()) << a.status();
  ASSERT_TRUE(b.is_ok()) << b.status();
  auto ra = rounds(*a), rb = rounds(*b);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].test_accuracy, rb[i].test_accuracy) << "round " << i + 1;
    EXPECT_EQ(ra[i].test_loss, rb[i].test_loss) << "round " << i + 1;
    // Summed in worker order: results arrive in any order.
    EXPECT_EQ(ra[i].train_loss, rb[i].train_loss) << "round " << i + 1;
  }
  EXPECT_TRUE(a->final_model.equal(b->final_model));
}

TEST_F(RunTest, ResumeEndsWithTheSameModelAsAnUninterruptedRun) {
  auto full = run_experiment(config(kThreeTier, "full", {"strategy.participation=0.5"}), quiet());
  ASSERT_TRUE(full.is_ok()) << full.status();

  auto c = config(kThreeTier, "killed", {"strategy.participation=0.5"});
  RunOptions first = quiet();
  first.stop_after_rounds = 1;  // as if killed after round 1's checkpoint
  auto part = run_experiment(c, first);
  ASSERT_TRUE(part.is_ok()) << part.status();
  EXPECT_EQ(part->rounds_completed, 1);
  EXPECT_FALSE(fs::exists(part->output_dir + "/summary.json"));

  RunOptions again = quiet();
  again.resume = true;
  again.output_dir = part->output_dir;
  auto resumed = run_experiment(c, again);
  ASSERT_TRUE(resumed.is_ok()) << resumed.status();
  EXPECT_TRUE(resumed->final_model.equal(full->final_model));
  auto rows = rounds(*resumed);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows.back().test_accuracy, rounds(*full).back().test_accuracy);

  RunOptions nothing = quiet();
  nothing.resume = true;
  nothing.output_dir = dir_.file("never-ran");
  auto missing = run_experiment(c, nothing);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no checkpoint"), std::string::npos);
}

// A registry whose `train` fails on chosen workers and otherwise is the real one.
class FailingWorkers {
 public:
  explicit FailingWorkers(std::set<std::string> bad) : bad_(std::move(bad)) {
    faas::add_builtin_functions(registry_);
    register_functions(registry_);
    auto real = registry_.find("train");
    real_ = *real;
    registry_.add("train",
                  [this](const nlohmann::json& args,
                         const faas::TaskContext& ctx) -> StatusOr<nlohmann::json> {
                    if (bad_.count(args.at("node").get<std::string>())) {
                      return internal_error("disk on fire");
                    }
                    return real_(args, ctx);
                  });
  }
  faas::FunctionRegistry& registry() { return registry_; }

 private:
  std::set<std::string> bad_;
  faas::FunctionRegistry registry_;
  faas::Function real_;
};

TEST_F(RunTest, FailedWorkerIsReportedAndTheRoundGoesOnAboveMinFraction) {
  FailingWorkers fw({"w3"});
  RunOptions o = quiet();
  o.functions = &fw.registry();
  auto s =
      run_experiment(config(kThreeTier, "fail-ok", {"rounds=2", "faults.min_fraction=0.75"}), o);
  ASSERT_TRUE(s.is_ok()) << s.status();
  auto rows = rounds(*s);
  ASSERT_EQ(rows.size(), 2u);
  std::ifstream in(s->output_dir + "/rounds.csv");
  std::string header, line;
  std::getline(in, header);
  std::getline(in, line);
  // selected 8, returned 7, stragglers 0, failed 1
  EXPECT_NE(line.find(",8,7,0,1,"), std::string::npos) << line;
  std::string tasks = testing::read_file(s->output_dir + "/tasks.csv");
  EXPECT_NE(tasks.find("w3"), std::string::npos);
  EXPECT_NE(tasks.find("disk on fire"), std::string::npos);
}

TEST_F(RunTest, FailuresBelowMinFractionStopTheRunNamingTheWorker) {
  FailingWorkers fw({"w3"});
  RunOptions o = quiet();
  o.functions = &fw.registry();
  auto s = run_experiment(config(kThreeTier, "fail-stop", {"rounds=2"}), o);
  ASSERT_FALSE(s.is_ok());
  const std::string m = s.status().message();
  EXPECT_NE(m.find("round 1"), std::string::npos) << m;
  EXPECT_NE(m.find("7 of 8"), std::string::npos) << m;
  EXPECT_NE(m.find("w3"), std::string::npos) << m;
  EXPECT_NE(m.find("disk on fire"), std::string::npos) << m;
}

TEST_F(RunTest, AggregatorWhoseChildrenAllFailedReportsUpward) {
  FailingWorkers fw({"w1", "w2", "w3", "w4"});
  RunOptions o = quiet();
  o.functions = &fw.registry();
  auto s =
      run_experiment(config(kThreeTier, "agg-fail", {"rounds=1", "faults.min_fraction=0.5"}), o);
  ASSERT_TRUE(s.is_ok()) << s.status();
  auto rows = rounds(*s);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(
      testing::read_file(s->output_dir + "/rounds.csv").find(",8,4,0,4,") != std::string::npos,
      true);
}

TEST_F(RunTest, MalformedResultIsATaskFailureNotAHang) {
  // An endpoint is another process: its result is input. w5 answers nonsense.
  faas::FunctionRegistry registry;
  faas::add_builtin_functions(registry);
  register_functions(registry);
  faas::Function real = *registry.find("train");
  registry.add(
      "train",
      [&](const nlohmann::json& args, const faas::TaskContext& ctx) -> StatusOr<nlohmann::json> {
        if (args.at("node") == "w5") return nlohmann::json{{"update", 42}, {"weight", "heavy"}};
        return real(args, ctx);
      });
  RunOptions o = quiet();
  o.functions = &registry;
  auto s =
      run_experiment(config(kThreeTier, "malformed", {"rounds=1", "faults.min_fraction=0.75"}), o);
  ASSERT_TRUE(s.is_ok()) << s.status();
  EXPECT_NE(testing::read_file(s->output_dir + "/rounds.csv").find(",8,7,0,1,"), std::string::npos);
  EXPECT_NE(testing::read_file(s->output_dir + "/tasks.csv").find("malformed result"),
            std::string::npos);
}

TEST_F(RunTest, DeadlineDropsStragglersAndCountsThem) {
  // w2 trains until cancelled: it can never make a deadline.
  faas::FunctionRegistry registry;
  faas::add_builtin_functions(registry);
  register_functions(registry);
  faas::Function real = *registry.find("train");
  std::atomic<int> n_cancelled{0};
  registry.add(
      "train",
      [&](const nlohmann::json& args, const faas::TaskContext& ctx) -> StatusOr<nlohmann::json> {
        if (args.at("node") == "w2") {
          testing::wait_until(ctx.cancelled, std::chrono::seconds(120));
          n_cancelled++;
          return flight::cancelled("stopped at the deadline");
        }
        return real(args, ctx);
      });
  RunOptions o = quiet();
  o.functions = &registry;
  auto s =
      run_experiment(config(kThreeTier, "deadline",
                            {"rounds=2", "faults.round_deadline_s=6", "faults.min_fraction=0.5"}),
                     o);
  ASSERT_TRUE(s.is_ok()) << s.status();
  const std::string csv = testing::read_file(s->output_dir + "/rounds.csv");
  // selected 8, returned 7, 1 straggler, 0 failed — in both rounds.
  size_t first = csv.find(",8,7,1,0,");
  ASSERT_NE(first, std::string::npos) << csv;
  EXPECT_NE(csv.find(",8,7,1,0,", first + 1), std::string::npos) << csv;
  EXPECT_EQ(n_cancelled.load(), 2);
}

// The same experiment over the distributed deployment — a REST service, two
// `flight endpoint` processes, weights through a real redis-server — gives the
// same accuracies as the embedded run. One edge-b endpoint is SIGKILLed after
// round 1; its twin serves the rest of the run.
TEST_F(RunTest, DistributedRunOverRestAndRedisMatchesTheLocalRun) {
  testing::RedisServer redis;
  const std::string token_file = write("token", "s3cret-token\n");
  faas::ServiceOptions so;
  so.token = "s3cret-token";
  so.lease_s = 3;
  faas::Service service(so);
  ASSERT_TRUE(service.start().is_ok());

  std::vector<std::unique_ptr<testing::Subprocess>> endpoints;
  for (const char* name : {"edge-a", "edge-b", "edge-b"}) {
    testing::Subprocess::Options po;
    po.stderr_path =
        dir_.file(std::string("endpoint-") + name + std::to_string(endpoints.size()) + ".log");
    endpoints.push_back(std::make_unique<testing::Subprocess>(
        std::vector<std::string>{FLIGHT_BINARY, "endpoint", "--service", service.url(),
                                 "--token-file", token_file, "--name", name, "--threads", "1"},
        po));
  }

  auto local = run_experiment(config(kThreeTier, "local", {"strategy.participation=0.5"}), quiet());
  ASSERT_TRUE(local.is_ok()) << local.status();

  auto c = config(kThreeTier, "dist",
                  {"strategy.participation=0.5", "control.rest.url=" + service.url(),
                   "control.rest.token_file=" + token_file, "data_plane.connector.kind=redis",
                   "data_plane.connector.host=127.0.0.1",
                   "data_plane.connector.port=" + std::to_string(redis.port())});
  RunOptions o = quiet();
  o.on_round = [&](const RoundRow& row) {
    if (row.round == 1) {
      endpoints[2]->signal(SIGKILL);
      endpoints[2]->wait();
    }
  };
  auto dist = run_experiment(c, o);
  ASSERT_TRUE(dist.is_ok()) << dist.status();
  auto rl = rounds(*local), rd = rounds(*dist);
  ASSERT_EQ(rl.size(), rd.size());
  for (size_t i = 0; i < rl.size(); ++i) {
    EXPECT_NEAR(rl[i].test_accuracy, rd[i].test_accuracy, 1e-9) << "round " << i + 1;
    EXPECT_EQ(rd[i].returned, rd[i].selected) << "round " << i + 1;
  }
  EXPECT_LT(max_rel_diff(local->final_model, dist->final_model), 1e-6);
  for (auto& e : endpoints) e->signal(SIGTERM);
  for (auto& e : endpoints) EXPECT_NE(e->wait_for(std::chrono::seconds(30)), -1);
}

}  // namespace
}  // namespace flight::engine
