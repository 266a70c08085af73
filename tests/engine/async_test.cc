// mode: async — staleness bookkeeping on a hand-computed schedule, fedbuff
// with K = W equal to a sync FedAvg round, hierarchical convergence on
// Fashion-MNIST, and virtual-clock reproducibility.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "flight/base/strings.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "tests/engine/params_diff.h"
#include "tests/support/process.h"

namespace flight::engine {
namespace {

class AsyncTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
    return dir_.file(name);
  }

  ExperimentConfig config(const std::string& topology, const std::string& name,
                          const std::string& extra, std::vector<std::string> overrides = {}) {
    write("topo-" + name + ".yaml", topology);
    std::string cfg = "name: " + name + "\nseed: 11\ntopology: topo-" + name + ".yaml\n" + R"(
model: {name: mlp}
data: {dataset: fashion_mnist, partition: {method: iid}}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 10}
threads: 2
)" + extra;
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

  // (from, staleness, merged_into) of every merged update, in order.
  static std::vector<std::tuple<std::string, int64_t, int64_t>> updates(const RunSummary& s) {
    std::vector<std::tuple<std::string, int64_t, int64_t>> out;
    std::ifstream in(s.output_dir + "/updates.csv");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      auto c = split(line, ',');
      out.emplace_back(c[2], std::stoll(c[7]), std::stoll(c[6]));
    }
    return out;
  }

  testing::TempDir dir_;
};

TEST_F(AsyncTest, StalenessFollowsTheHandComputedSchedule) {
  // w1 takes one time unit per task, w2 (speed 0.5) two. Virtual time:
  //   t=1 w1 (from v0) -> v1; t=2 w1 (v1) -> v2, then w2 (v0) -> v3 (staleness 2);
  //   t=3 w1 (v2) -> v4 (1); t=4 w1 (v4) -> v5 (0), then w2 (v3) -> v6 (2).
  auto c = config(R"(c: {kind: coordinator, children: [w1, w2]}
w1: {kind: worker}
w2: {kind: worker, speed: 0.5}
)",
                  "schedule", R"(strategy: {name: fedasync, params: {alpha: 0.5}}
mode: async
async: {max_updates: 6, eval_every: 6, }
clock: virtual
)");
  auto s = run_experiment(c, quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  using U = std::tuple<std::string, int64_t, int64_t>;
  std::vector<U> expected = {U{"w1", 0, 0}, U{"w1", 0, 1}, U{"w2", 2, 2},
                             U{"w1", 1, 3}, U{"w1", 0, 4}, U{"w2", 2, 5}};
  EXPECT_EQ(updates(*s), expected);
  EXPECT_EQ(s->updates_merged, 6);
  EXPECT_EQ(s->model_versions, 6);
  EXPECT_DOUBLE_EQ(s->makespan_s, 4 * 320.0 / 1000.0);  // 10 steps × 32 samples at 1000/s
}

TEST_F(AsyncTest, FedBuffWithKEqualToWorkersMatchesOneSyncFedAvgRound) {
  const char* flat4 = R"(c: {kind: coordinator, children: [w1, w2, w3, w4]}
w1: {kind: worker}
w2: {kind: worker}
w3: {kind: worker}
w4: {kind: worker}
)";
  auto async = run_experiment(
      config(flat4, "buff", R"(strategy: {name: fedbuff, params: {buffer_size: 4, server_lr: 1.0}}
mode: async
async: {max_updates: 4, eval_every: 4, }
clock: virtual
)"),
      quiet());
  auto sync = run_experiment(config(flat4, "sync", R"(strategy: {name: fedavg}
rounds: 1
)"),
                             quiet());
  ASSERT_TRUE(async.is_ok()) << async.status();
  ASSERT_TRUE(sync.is_ok()) << sync.status();
  EXPECT_EQ(async->model_versions, 1);
  EXPECT_LT(max_rel_diff(async->final_model, sync->final_model), 1e-5);
}

const char* kTwoSites = R"(c: {kind: coordinator, children: [a, b]}
a: {kind: aggregator, children: [a1, a2, a3]}
b: {kind: aggregator, children: [b1, b2, b3]}
a1: {kind: worker}
a2: {kind: worker, speed: 0.5}
a3: {kind: worker, speed: 0.25}
b1: {kind: worker}
b2: {kind: worker, speed: 0.5}
b3: {kind: worker, speed: 0.25}
)";

TEST_F(AsyncTest, HierarchicalAsyncConvergesOnFashionMnist) {
  auto s = run_experiment(
      config(kTwoSites, "hier", R"(strategy: {name: fedbuff, params: {buffer_size: 2}}
mode: async
async: {max_updates: 60, eval_every: 20, aggregator_buffer: 2, }
clock: virtual
)"),
      quiet());
  ASSERT_TRUE(s.is_ok()) << s.status();
  EXPECT_GT(s->final_accuracy, 0.6);
  EXPECT_GE(s->updates_merged, 60);
  // Every merge at the coordinator is a partial from an aggregator.
  for (const auto& u : updates(*s)) {
    EXPECT_TRUE(std::get<0>(u) == "a" || std::get<0>(u) == "b") << std::get<0>(u);
  }
  // Slow devices did fewer tasks than fast ones.
  std::string workers = testing::read_file(s->output_dir + "/workers.csv");
  EXPECT_NE(workers.find("a1,"), std::string::npos);
}

TEST_F(AsyncTest, VirtualClockRunsAreReproducible) {
  const std::string extra =
      R"(strategy: {name: fedasync, params: {alpha: 0.5, staleness: polynomial}}
mode: async
async: {max_updates: 24, eval_every: 12, aggregator_buffer: 2, }
clock: virtual
heterogeneity: {speed_sigma: 0.5}
)";
  auto a = run_experiment(config(kTwoSites, "rep-a", extra), quiet());
  auto b = run_experiment(config(kTwoSites, "rep-b", extra), quiet());
  ASSERT_TRUE(a.is_ok()) << a.status();
  ASSERT_TRUE(b.is_ok()) << b.status();
  EXPECT_EQ(updates(*a), updates(*b));
  EXPECT_TRUE(a->final_model.equal(b->final_model));
  EXPECT_EQ(a->final_accuracy, b->final_accuracy);
}

// Stopped after two checkpoints (as if killed) and resumed: the same merges,
// evaluations, worker statistics and final model as the uninterrupted run.
// FedBuff's server buffer, the aggregators' buffers, stale versions still in
// use, dropped results and in-flight tasks all cross the checkpoint.
TEST_F(AsyncTest, ResumedVirtualClockRunEndsWithTheUninterruptedModel) {
  const std::string extra = R"(strategy: {name: fedbuff, params: {buffer_size: 3}}
mode: async
async: {max_updates: 30, eval_every: 4, aggregator_buffer: 2}
clock: virtual
heterogeneity: {speed_sigma: 0.5, dropout: 0.1}
)";
  auto full = run_experiment(config(kTwoSites, "whole", extra), quiet());
  ASSERT_TRUE(full.is_ok()) << full.status();

  const ExperimentConfig c = config(kTwoSites, "killed", extra);
  RunOptions first = quiet();
  first.stop_after_rounds = 2;
  auto part = run_experiment(c, first);
  ASSERT_TRUE(part.is_ok()) << part.status();
  EXPECT_TRUE(part->stopped);
  EXPECT_LT(part->updates_merged, 30);
  EXPECT_FALSE(std::filesystem::exists(part->output_dir + "/model.pt"));
  // The cut is interesting: older versions still trained from, buffered updates.
  const std::string latest = testing::read_file(part->output_dir + "/checkpoints/LATEST");
  auto state = nlohmann::json::parse(
      testing::read_file(part->output_dir + "/checkpoints/" + latest + "/state.json"));
  const auto& a = state.at("extra").at("async");
  EXPECT_GT(a.at("versions").size(), 1u) << a.dump();
  EXPECT_FALSE(a.at("buffers").empty()) << a.dump();

  RunOptions again = quiet();
  again.resume = true;
  again.output_dir = part->output_dir;
  auto resumed = run_experiment(c, again);
  ASSERT_TRUE(resumed.is_ok()) << resumed.status();
  EXPECT_TRUE(resumed->final_model.equal(full->final_model));
  EXPECT_EQ(updates(*resumed), updates(*full));
  EXPECT_EQ(resumed->model_versions, full->model_versions);
  EXPECT_EQ(resumed->final_accuracy, full->final_accuracy);
  EXPECT_EQ(testing::read_file(resumed->output_dir + "/workers.csv"),
            testing::read_file(full->output_dir + "/workers.csv"));
  auto rows = [](const RunSummary& s) {
    std::vector<std::pair<int64_t, double>> out;
    for (const auto& r : *read_rounds_csv(s.output_dir + "/rounds.csv"))
      out.emplace_back(r.returned, r.test_accuracy);
    return out;
  };
  EXPECT_EQ(rows(*resumed), rows(*full));
}

TEST_F(AsyncTest, SyncStrategyInAsyncModeIsAClearError) {
  auto s =
      run_experiment(config(kTwoSites, "bad", "strategy: {name: fedavg}\nmode: async\n"), quiet());
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("fedasync or fedbuff"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace flight::engine
