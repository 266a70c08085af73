// Scale: 10,000 virtual workers in one no-training round, exact byte counts of
// hierarchical against flat aggregation, and the debug mode's contract (the
// model comes back unchanged). No timing assertions: timing is
// `flight bench scale`.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/job.h"
#include "flight/engine/job_cache.h"
#include "flight/engine/task_process.h"
#include "flight/engine/tasks.h"
#include "flight/faas/functions.h"
#include "flight/learning/model.h"
#include "tests/support/process.h"
#include "transport/codec.h"
#include "transport/ref.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using nlohmann::json;

class ScaleTest : public ::testing::Test {
 protected:
  // A no-training (debug) fedsgd experiment over a generated topology.
  ExperimentConfig config(const json& topology, const std::string& name,
                          const std::string& model = "tiny", int64_t rounds = 1) {
    json j{
        {"name", name},
        {"seed", 3},
        {"topology", topology},
        {"model", {{"name", model}}},
        {"data",
         {{"dataset", "synthetic"}, {"synthetic_samples", 2000}, {"synthetic_test_samples", 100}}},
        {"strategy", {{"name", "fedsgd"}}},
        {"rounds", rounds},
        {"debug", true},
        {"threads", 2},
        {"eval", {{"batch_size", 100}}},
        {"output", {{"dir", dir_.file(name)}, {"checkpoint_every", 0}, {"save_model", false}}}};
    auto c = ExperimentConfig::from_json(j, name, dir_.path());
    EXPECT_TRUE(c.is_ok()) << c.status();
    return *c;
  }

  struct Outcome {
    RunSummary summary;
    std::vector<RoundRow> rows;
  };

  Outcome run(const ExperimentConfig& c) {
    Outcome out;
    RunOptions o;
    o.quiet = true;
    o.on_round = [&](const RoundRow& r) { out.rows.push_back(r); };
    auto s = run_experiment(c, o);
    EXPECT_TRUE(s.is_ok()) << s.status();
    if (s.is_ok()) out.summary = std::move(*s);
    return out;
  }

  // Encoded bytes of `model`'s initial state: the size of every Ref a debug
  // round moves (the global model and every partial aggregate).
  uint64_t model_bytes(const std::string& model) {
    learning::ModelSpec spec;
    spec.name = model;
    auto m = learning::make_model(spec);
    EXPECT_TRUE(m.is_ok()) << m.status();
    auto size = transport::encoded_size((*m)->state());
    EXPECT_TRUE(size.is_ok()) << size.status();
    return *size;
  }

  static int64_t count_lines(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) ++n;
    return n;
  }

  testing::TempDir dir_;
};

TEST_F(ScaleTest, TenThousandWorkersOneRoundEveryWorkerCounted) {
  // coordinator -> 100 aggregators -> 10,000 workers.
  auto out =
      run(config({{"generate", "tiers"}, {"aggregators", {100}}, {"workers", 10000}}, "w10k"));
  ASSERT_EQ(out.rows.size(), 1u);
  const RoundRow& r = out.rows[0];
  EXPECT_EQ(r.selected, 10000);
  EXPECT_EQ(r.returned, 10000);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.stragglers, 0);
  EXPECT_EQ(out.summary.rounds_completed, 1);
  // One tasks.csv row per task: 10,000 train + 100 aggregate, plus the header.
  EXPECT_EQ(count_lines(out.summary.output_dir + "/tasks.csv"), 1 + 10000 + 100);
  // Every worker's (logical) fetch of the global model, every aggregator's
  // fetch of its children, the coordinator's of its 100 aggregators.
  const uint64_t s = model_bytes("tiny");
  EXPECT_EQ(r.coordinator_ingress, 100 * s);
  EXPECT_EQ(r.bytes_fetched, (10000 + 10000 + 100) * s);
}

TEST_F(ScaleTest, FlatTenThousandWorkersAllReturn) {
  auto out = run(config({{"generate", "flat"}, {"workers", 10000}}, "flat10k"));
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].selected, 10000);
  EXPECT_EQ(out.rows[0].returned, 10000);
  EXPECT_EQ(out.rows[0].coordinator_ingress, 10000 * model_bytes("tiny"));
}

TEST_F(ScaleTest, HierarchyCutsCoordinatorIngressByTheFanInRatio) {
  // 64 leaves: flat (height 1) against a balanced tree of height 3 (4 x 4 x 4),
  // a real model. Debug rounds are deterministic, so the bytes are exact.
  const std::string model = "lenet5";
  const uint64_t s = model_bytes(model);
  auto flat = run(config({{"generate", "by_leaves"}, {"leaves", 64}, {"height", 1}}, "h1", model));
  auto deep = run(config({{"generate", "by_leaves"}, {"leaves", 64}, {"height", 3}}, "h3", model));
  ASSERT_EQ(flat.rows.size(), 1u);
  ASSERT_EQ(deep.rows.size(), 1u);
  const RoundRow& f = flat.rows[0];
  const RoundRow& d = deep.rows[0];
  EXPECT_EQ(f.returned, 64);
  EXPECT_EQ(d.returned, 64);

  // Coordinator ingress: one model per child of the root.
  EXPECT_EQ(f.coordinator_ingress, 64 * s);
  EXPECT_EQ(d.coordinator_ingress, 4 * s);
  EXPECT_EQ(f.coordinator_ingress, 16 * d.coordinator_ingress);  // a 93.75% reduction

  // Fetched: workers fetch the global model (64), every node fetches its
  // children once: flat 64 at the root; deep 64 + 16 + 4 over the tiers.
  EXPECT_EQ(f.bytes_fetched, (64 + 64) * s);
  EXPECT_EQ(d.bytes_fetched, (64 + 64 + 16 + 4) * s);
  // Put: debug workers put nothing (they hand up the global model's Ref);
  // each aggregator puts one partial aggregate, counted at its tier.
  EXPECT_EQ(f.bytes_put, 0u);
  EXPECT_EQ(d.bytes_put, (16 + 4) * s);
  ASSERT_EQ(d.bytes_up_by_tier.size(), 4u);
  EXPECT_EQ(d.bytes_up_by_tier[1], 4 * s);
  EXPECT_EQ(d.bytes_up_by_tier[2], 16 * s);
  EXPECT_EQ(d.bytes_up_by_tier[3], 0u);
}

TEST_F(ScaleTest, DebugModeReturnsTheModelUnchanged) {
  // Through a binary tree every fold is (x + x) / 2, exact in floating point:
  // two debug rounds over three tiers must give back the initial model bit
  // for bit.
  ExperimentConfig c =
      config({{"generate", "by_leaves"}, {"leaves", 8}, {"height", 3}}, "debug", "lenet5", 2);
  auto m = learning::make_model(c.model);
  ASSERT_TRUE(m.is_ok()) << m.status();
  ParamSet initial = (*m)->state().clone();
  auto out = run(c);
  ASSERT_EQ(out.rows.size(), 2u);
  ASSERT_TRUE(out.summary.final_model.check_compatible(initial).is_ok());
  EXPECT_TRUE(out.summary.final_model.equal(initial));

  // The function itself: `train` in a debug job hands back the Ref it was
  // given, not owned (nobody may evict the shared global model), and puts nothing.
  faas::FunctionRegistry registry;
  register_functions(registry);
  auto train = registry.find("train");
  ASSERT_TRUE(train.is_ok());
  auto store = store_for(json{{"kind", "memory"}});
  ASSERT_TRUE(store.is_ok()) << store.status();
  auto ref = (*store)->put(initial);
  ASSERT_TRUE(ref.is_ok()) << ref.status();
  Job job;
  job.model = c.model;
  job.data = c.data;
  job.train = c.train;
  job.strategy = c.strategy;
  job.n_workers = 8;
  job.debug = true;
  const json job_json = job.to_json();
  json args{{"job", job_json},
            {"round", 1},
            {"node", "w0"},
            {"worker_index", 0},
            {"model", ref->to_json()},
            {"put", {{"connector", {{"kind", "memory"}}}, {"scope", "t"}}}};
  const uint64_t puts_before = (*store)->stats().puts;
  auto got = (*train)(args, faas::TaskContext{});
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_EQ(got->at("update"), ref->to_json());
  EXPECT_EQ(got->at("owned"), false);
  EXPECT_EQ(got->at("bytes_put"), 0);
  EXPECT_EQ((*store)->stats().puts, puts_before);

  // Tasks may carry only the job's id once the process knows the job...
  json by_id = args;
  by_id.erase("job");
  by_id["job_id"] = register_job(job_json);
  auto again = (*train)(by_id, faas::TaskContext{});
  ASSERT_TRUE(again.is_ok()) << again.status();
  EXPECT_EQ(again->at("update"), ref->to_json());
  // ... and an unknown id without the job is a clear error, not a crash.
  by_id["job_id"] = "job-0000000000000000";
  auto unknown = (*train)(by_id, faas::TaskContext{});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("job-0000000000000000"), std::string::npos)
      << unknown.status();
}

}  // namespace
}  // namespace flight::engine
