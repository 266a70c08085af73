// Scale: 10,000 virtual workers in one no-training round, exact byte counts of
// hierarchical against flat aggregation, the debug modes' contracts (debug:
// true moves a real round's bytes, dispatch moves none and gives the model
// back unchanged), and flow control (updates alive at once stay within the
// fold window, whatever the number of workers). No timing assertions: timing
// is `flight bench scale`.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <mutex>
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
#include "topology/topology.h"
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
                          const std::string& model = "tiny", int64_t rounds = 1,
                          const json& debug = true, const json& extra = json::object()) {
    json j{
        {"name", name},
        {"seed", 3},
        {"topology", topology},
        {"model", {{"name", model}}},
        {"data",
         {{"dataset", "synthetic"}, {"synthetic_samples", 2000}, {"synthetic_test_samples", 100}}},
        {"strategy", {{"name", "fedsgd"}}},
        {"rounds", rounds},
        {"debug", debug},
        {"threads", 2},
        {"eval", {{"batch_size", 100}}},
        {"output", {{"dir", dir_.file(name)}, {"checkpoint_every", 0}, {"save_model", false}}}};
    j.update(extra);
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

  // The initial state of `c`'s model (its seed-built weights).
  static ParamSet initial_model(const ExperimentConfig& c) {
    auto m = learning::make_model(c.model);
    EXPECT_TRUE(m.is_ok()) << m.status();
    return m.is_ok() ? (*m)->state().clone() : ParamSet{};
  }

  // tasks.csv rows whose `kind` column is `kind`.
  static int64_t count_tasks(const std::string& path, const std::string& kind) {
    std::ifstream in(path);
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      if (line.find("," + kind + ",") != std::string::npos) ++n;
    }
    return n;
  }

  testing::TempDir dir_;
};

TEST_F(ScaleTest, TenThousandWorkersOneRoundEveryWorkerCounted) {
  // coordinator -> 100 aggregators -> 10,000 workers, data moving (debug: true).
  auto out =
      run(config({{"generate", "tiers"}, {"aggregators", {100}}, {"workers", 10000}}, "w10k"));
  ASSERT_EQ(out.rows.size(), 1u);
  const RoundRow& r = out.rows[0];
  EXPECT_EQ(r.selected, 10000);
  EXPECT_EQ(r.returned, 10000);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.stragglers, 0);
  EXPECT_EQ(out.summary.rounds_completed, 1);
  // One tasks.csv row per task: 10,000 train; each aggregator folds its
  // children in one or more streaming aggregate tasks.
  const std::string tasks = out.summary.output_dir + "/tasks.csv";
  EXPECT_EQ(count_tasks(tasks, "train"), 10000);
  EXPECT_GE(count_tasks(tasks, "aggregate"), 100);
  // Every worker fetches the global model and puts its own update; every
  // aggregator fetches each of its children's, the coordinator its 100
  // aggregators' partial aggregates.
  const uint64_t s = model_bytes("tiny");
  EXPECT_EQ(r.coordinator_ingress, 100 * s);
  EXPECT_EQ(r.bytes_fetched, (10000 + 10000 + 100) * s);
  EXPECT_EQ(r.bytes_put, (10000 + 100) * s);
}

TEST_F(ScaleTest, FlatTenThousandWorkersAllReturn) {
  auto out = run(config({{"generate", "flat"}, {"workers", 10000}}, "flat10k"));
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].selected, 10000);
  EXPECT_EQ(out.rows[0].returned, 10000);
  EXPECT_EQ(out.rows[0].coordinator_ingress, 10000 * model_bytes("tiny"));
  EXPECT_EQ(out.rows[0].bytes_put, 10000 * model_bytes("tiny"));
}

TEST_F(ScaleTest, DispatchOnlyMovesNoModelBytes) {
  // debug: dispatch: workers hand back the global model's Ref; nothing is
  // fetched or put by them, and each aggregator's partial is its only put.
  auto out = run(config({{"generate", "tiers"}, {"aggregators", {10}}, {"workers", 1000}},
                        "dispatch", "tiny", 1, "dispatch"));
  ASSERT_EQ(out.rows.size(), 1u);
  const RoundRow& r = out.rows[0];
  const uint64_t s = model_bytes("tiny");
  EXPECT_EQ(r.returned, 1000);
  EXPECT_EQ(r.bytes_put, 10 * s);
  // Aggregators resolve each child's Ref (the one global model, from the
  // cache), the coordinator its 10 children.
  EXPECT_EQ(r.bytes_fetched, (1000 + 10) * s);
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
  // Put: every worker puts its update; each aggregator one partial
  // aggregate, counted at its tier.
  EXPECT_EQ(f.bytes_put, 64 * s);
  EXPECT_EQ(d.bytes_put, (64 + 16 + 4) * s);
  ASSERT_EQ(d.bytes_up_by_tier.size(), 4u);
  EXPECT_EQ(d.bytes_up_by_tier[1], 4 * s);
  EXPECT_EQ(d.bytes_up_by_tier[2], 16 * s);
  EXPECT_EQ(d.bytes_up_by_tier[3], 64 * s);
}

TEST_F(ScaleTest, DispatchModeReturnsTheModelUnchanged) {
  // Through a binary tree every fold is (x + x) / 2, exact in floating point:
  // two dispatch rounds over three tiers must give back the initial model bit
  // for bit.
  ExperimentConfig c = config({{"generate", "by_leaves"}, {"leaves", 8}, {"height", 3}},
                              "dispatch-tree", "lenet5", 2, "dispatch");
  ParamSet initial = initial_model(c);
  ASSERT_FALSE(initial.empty());
  auto out = run(c);
  ASSERT_EQ(out.rows.size(), 2u);
  ASSERT_TRUE(out.summary.final_model.check_compatible(initial).is_ok());
  EXPECT_TRUE(out.summary.final_model.equal(initial));
}

TEST_F(ScaleTest, DataModeFoldsEveryWorkersOwnCopy) {
  // debug: true: worker k's update is the model + (k + 1) x 2^-20 on every
  // floating element; fedsgd averages 8 of them, so each round moves the
  // model by 4.5 x 2^-20 (up to float rounding).
  ExperimentConfig c =
      config({{"generate", "by_leaves"}, {"leaves", 8}, {"height", 3}}, "data-tree", "lenet5", 2);
  ParamSet initial = initial_model(c);
  ASSERT_FALSE(initial.empty());
  auto out = run(c);
  ASSERT_EQ(out.rows.size(), 2u);
  ASSERT_TRUE(out.summary.final_model.check_compatible(initial).is_ok());
  const double shift = 2 * 4.5 * 0x1p-20;
  for (size_t i = 0; i < initial.size(); ++i) {
    at::Tensor moved =
        out.summary.final_model[i].tensor.to(at::kDouble).sub(initial[i].tensor.to(at::kDouble));
    EXPECT_NEAR(moved.min().item<double>(), shift, 1e-7) << initial[i].name;
    EXPECT_NEAR(moved.max().item<double>(), shift, 1e-7) << initial[i].name;
  }
}

TEST_F(ScaleTest, TrainFunctionInEachDebugMode) {
  ExperimentConfig c = config({{"generate", "flat"}, {"workers", 8}}, "fn", "lenet5");
  ParamSet initial = initial_model(c);
  ASSERT_FALSE(initial.empty());
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
  job.debug = DebugMode::kDispatch;
  json args{{"job", job.to_json()},
            {"round", 1},
            {"node", "w3"},
            {"worker_index", 3},
            {"model", ref->to_json()},
            {"put", {{"connector", {{"kind", "memory"}}}, {"scope", "t"}}}};

  // dispatch: hands back the Ref it was given, not owned (nobody may evict
  // the shared global model), and fetches and puts nothing.
  const transport::StoreStats before = (*store)->stats();
  auto got = (*train)(args, faas::TaskContext{});
  ASSERT_TRUE(got.is_ok()) << got.status();
  EXPECT_EQ(got->at("update"), ref->to_json());
  EXPECT_EQ(got->at("owned"), false);
  EXPECT_EQ(got->at("bytes_put"), 0);
  EXPECT_EQ(got->at("bytes_fetched"), 0);
  EXPECT_EQ((*store)->stats().puts, before.puts);
  EXPECT_EQ((*store)->stats().gets, before.gets);

  // debug: true: fetches the model and puts its own copy, + 4 x 2^-20.
  job.debug = DebugMode::kMoveData;
  args["job"] = job.to_json();
  auto moved = (*train)(args, faas::TaskContext{});
  ASSERT_TRUE(moved.is_ok()) << moved.status();
  EXPECT_EQ(moved->at("owned"), true);
  EXPECT_EQ((*store)->stats().puts, before.puts + 1);
  auto update_ref = transport::Ref::from_json(moved->at("update"));
  ASSERT_TRUE(update_ref.is_ok()) << update_ref.status();
  EXPECT_NE(update_ref->key, ref->key);
  EXPECT_EQ(moved->at("bytes_put"), update_ref->size);
  EXPECT_EQ(moved->at("bytes_fetched"), ref->size);
  auto update = (*store)->get(*update_ref);
  ASSERT_TRUE(update.is_ok()) << update.status();
  ParamSet want;
  for (const auto& e : initial) want.add(e.name, e.tensor.add(4 * 0x1p-20));
  EXPECT_TRUE(update->equal(want));
  EXPECT_FALSE(update->equal(initial));
  ASSERT_TRUE((*store)->evict(*update_ref).is_ok());

  // Tasks may carry only the job's id once the process knows the job...
  json by_id = args;
  by_id.erase("job");
  by_id["job_id"] = register_job(job.to_json());
  auto again = (*train)(by_id, faas::TaskContext{});
  ASSERT_TRUE(again.is_ok()) << again.status();
  EXPECT_EQ(again->at("bytes_put"), moved->at("bytes_put"));
  // ... and an unknown id without the job is a clear error, not a crash.
  by_id["job_id"] = "job-0000000000000000";
  auto unknown = (*train)(by_id, faas::TaskContext{});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("job-0000000000000000"), std::string::npos)
      << unknown.status();
}

// Flow control: with the embedded data plane every update lives in this
// process until its parent folds it. Sampled by every train task right after
// its put, the objects alive in the run's store (puts - evictions) stay within
// the global model + fold.window worker updates (+ one partial per
// aggregator), whatever the number of workers.
TEST_F(ScaleTest, UpdatesAliveStayWithinTheFoldWindow) {
  for (const bool tree : {false, true}) {
    const json connector{{"kind", "memory"}, {"name", tree ? "flow-tree" : "flow-flat"}};
    auto store = store_for(connector);
    ASSERT_TRUE(store.is_ok()) << store.status();
    faas::FunctionRegistry registry;
    faas::add_builtin_functions(registry);
    register_functions(registry);
    faas::Function real = *registry.find("train");
    std::mutex mu;
    int64_t peak = 0, samples = 0;
    registry.add("train", [&](const json& args, const faas::TaskContext& ctx) -> StatusOr<json> {
      auto r = real(args, ctx);
      const transport::StoreStats st = (*store)->stats();
      std::lock_guard<std::mutex> lock(mu);
      peak = std::max(peak, static_cast<int64_t>(st.puts) - static_cast<int64_t>(st.evictions));
      ++samples;
      return r;
    });
    const int64_t window = 4, aggregators = tree ? 3 : 0;
    const json topology = tree ? json{{"generate", "tiers"}, {"aggregators", {3}}, {"workers", 300}}
                               : json{{"generate", "flat"}, {"workers", 300}};
    ExperimentConfig c =
        config(topology, tree ? "flow-tree" : "flow-flat", "lenet5", 2, true,
               {{"fold", {{"window", window}}}, {"data_plane", {{"connector", connector}}}});
    RunOptions o;
    o.quiet = true;
    o.functions = &registry;
    auto s = run_experiment(c, o);
    ASSERT_TRUE(s.is_ok()) << s.status();
    EXPECT_EQ(samples, 600);
    EXPECT_GE(peak, 2) << "the probe saw no update alive";
    EXPECT_LE(peak, 1 + window + aggregators) << (tree ? "3-tier" : "flat");
    // Nothing is left behind.
    const transport::StoreStats end = (*store)->stats();
    EXPECT_EQ(end.puts, end.evictions);
  }
}

// debug: true moves what a real round moves. With a connector per tier,
// each Store's connector operations show it: one put per worker, one get per
// child at every aggregating node (and one get of the global model per
// process, the rest served by the cache, as in a real deployment).
TEST_F(ScaleTest, DataModeConnectorCountsOnePutPerWorkerOneGetPerChild) {
  auto generated = topology::generate::tiers({3}, 30, 0);
  ASSERT_TRUE(generated.is_ok()) << generated.status();
  std::vector<topology::Node> nodes = generated->nodes();
  for (auto& n : nodes) {
    n.connector = n.is_worker() ? "workers" : n.is_aggregator() ? "aggregators" : "coordinator";
  }
  auto t = topology::Topology::from_nodes(std::move(nodes), "counted");
  ASSERT_TRUE(t.is_ok()) << t.status();
  const std::string topo = dir_.file("counted.yaml");
  ASSERT_TRUE(t->save_yaml(topo).is_ok());
  const json workers{{"kind", "memory"}, {"name", "count-workers"}};
  const json aggregators{{"kind", "memory"}, {"name", "count-aggregators"}};
  const json coordinator{{"kind", "memory"}, {"name", "count-coordinator"}};
  ExperimentConfig c = config(
      topo, "counted", "lenet5", 1, true,
      {{"data_plane",
        {{"connector", "coordinator"},
         {"connectors",
          {{"workers", workers}, {"aggregators", aggregators}, {"coordinator", coordinator}}}}}});
  auto w = store_for(workers), a = store_for(aggregators), k = store_for(coordinator);
  ASSERT_TRUE(w.is_ok() && a.is_ok() && k.is_ok());
  auto out = run(c);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].returned, 30);
  const uint64_t s = model_bytes("lenet5");
  const transport::StoreStats ws = (*w)->stats(), as = (*a)->stats(), cs = (*k)->stats();
  EXPECT_EQ(ws.puts, 30u);  // one put per worker, its own update
  EXPECT_EQ(ws.bytes_put, 30 * s);
  EXPECT_EQ(ws.fetches, 1u);   // the global model, once for this process
  EXPECT_EQ(as.fetches, 30u);  // one get per child, from the workers' connector
  EXPECT_EQ(as.bytes_fetched, 30 * s);
  EXPECT_EQ(as.cache_hits, 0u);
  EXPECT_EQ(as.puts, 3u);     // one partial aggregate per aggregator
  EXPECT_EQ(cs.puts, 1u);     // the global model
  EXPECT_EQ(cs.fetches, 3u);  // one get per child aggregator
  EXPECT_EQ(cs.bytes_fetched, 3 * s);
}

}  // namespace
}  // namespace flight::engine
