// `flight data show [CONFIG] [flags]`: loads a dataset, partitions it across
// workers exactly as a run would (learning::partition with the config's seed),
// and prints each worker's sample count and label histogram.
//
// Sources of settings, later ones winning:
//   1. defaults (learning::DataSpec, 8 workers, seed 0);
//   2. CONFIG, an experiment YAML file read by the one config parser
//      (engine::ExperimentConfig::load, as `flight run` reads it): its `data:`,
//      `seed:` and the number of workers of its topology (file or generated);
//   3. flags: --dataset --root --workers --method --alpha --samples-alpha
//      --shards-per-worker --seed --synthetic-samples.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/cli/command.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/learning/dataset.h"
#include "flight/learning/partition.h"
#include "topology/topology.h"

namespace flight::cli {
namespace {

struct ShowArgs {
  std::string config;
  std::string dataset, root, method;
  double alpha = 0, samples_alpha = 0;
  int64_t shards_per_worker = 0, workers = 0, synthetic_samples = 0;
  uint64_t seed = 0;
  bool json = false;
  CLI::App* app = nullptr;
  bool given(const char* flag) const { return app->count(flag) > 0; }
};

int show(const ShowArgs& a) {
  nlohmann::json data = nlohmann::json::object();
  int64_t workers = 8;
  uint64_t seed = 0;
  if (!a.config.empty()) {
    auto cfg = engine::ExperimentConfig::load(a.config);
    if (!cfg.is_ok()) return fail(cfg.status().message());
    data = cfg->data.to_json();
    seed = cfg->seed;
    auto t = engine::load_experiment_topology(*cfg);
    if (!t.is_ok()) return fail(a.config + ": topology: " + t.status().message());
    workers = static_cast<int64_t>(t->workers().size());
  }
  // Flags override the file, then everything goes through the one parser.
  if (a.given("--dataset")) data["dataset"] = a.dataset;
  if (a.given("--root")) data["root"] = a.root;
  if (a.given("--synthetic-samples")) data["synthetic_samples"] = a.synthetic_samples;
  nlohmann::json part = data.value("partition", nlohmann::json::object());
  if (part.is_string()) part = {{"method", part}};
  if (a.given("--method")) part["method"] = a.method;
  if (a.given("--alpha")) part["alpha"] = a.alpha;
  if (a.given("--samples-alpha")) part["samples_alpha"] = a.samples_alpha;
  if (a.given("--shards-per-worker")) part["shards_per_worker"] = a.shards_per_worker;
  if (!part.empty()) data["partition"] = part;
  if (a.given("--workers")) workers = a.workers;
  if (a.given("--seed")) seed = a.seed;
  if (workers < 1) return usage_error("--workers must be >= 1");

  auto spec = learning::DataSpec::from_json(data);
  if (!spec.is_ok()) return usage_error(spec.status().message());
  auto ds = learning::load_dataset(*spec);
  if (!ds.is_ok()) return fail(ds.status().message());
  const learning::Dataset& train = *ds->train;
  auto parts =
      learning::partition(train.labels, static_cast<size_t>(workers), spec->partition, seed);
  if (!parts.is_ok()) return fail(parts.status().message());
  auto hist = learning::label_histograms(train.labels, *parts, train.num_classes);

  if (a.json) {
    nlohmann::json out = {{"data", spec->to_json()},
                          {"workers", workers},
                          {"seed", seed},
                          {"train_samples", train.size()},
                          {"test_samples", ds->test->size()},
                          {"num_classes", train.num_classes},
                          {"histograms", hist}};
    std::cout << out.dump() << std::endl;
    return kExitOk;
  }

  std::cout << "dataset " << spec->dataset << ": " << train.size() << " train / "
            << ds->test->size() << " test images, " << train.num_classes << " classes\n"
            << "partition " << spec->partition.to_json().dump() << " over " << workers
            << " workers, seed " << seed << "\n";
  char buf[64];
  std::cout << "worker  samples   top%";
  for (int64_t c = 0; c < train.num_classes; ++c) {
    std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(c));
    std::cout << buf;
  }
  std::cout << "\n";
  std::vector<int64_t> totals(static_cast<size_t>(train.num_classes), 0);
  int64_t min_n = INT64_MAX, max_n = 0, sum_n = 0;
  double top_sum = 0;
  for (size_t w = 0; w < hist.size(); ++w) {
    int64_t n = std::accumulate(hist[w].begin(), hist[w].end(), int64_t{0});
    int64_t top = hist[w].empty() ? 0 : *std::max_element(hist[w].begin(), hist[w].end());
    double share = n ? 100.0 * static_cast<double>(top) / static_cast<double>(n) : 0.0;
    top_sum += share;
    min_n = std::min(min_n, n);
    max_n = std::max(max_n, n);
    sum_n += n;
    std::snprintf(buf, sizeof buf, "%6zu %8lld %6.1f", w, static_cast<long long>(n), share);
    std::cout << buf;
    for (size_t c = 0; c < hist[w].size(); ++c) {
      totals[c] += hist[w][c];
      std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(hist[w][c]));
      std::cout << buf;
    }
    std::cout << "\n";
  }
  std::snprintf(buf, sizeof buf, "%6s %8lld %6s", "total", static_cast<long long>(sum_n), "");
  std::cout << buf;
  for (int64_t t : totals) {
    std::snprintf(buf, sizeof buf, " %6lld", static_cast<long long>(t));
    std::cout << buf;
  }
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(sum_n) / static_cast<double>(workers));
  std::cout << "\nsamples per worker: min " << min_n << ", mean " << buf << ", max " << max_n;
  std::snprintf(buf, sizeof buf, "%.1f", top_sum / static_cast<double>(workers));
  std::cout << "; mean top-label share " << buf << "%\n";
  return kExitOk;
}

FLIGHT_COMMAND(data_show,
               {"data", "show", "Print per-worker label histograms of a partitioned dataset",
                [](CLI::App* app) {
                  auto a = std::make_shared<ShowArgs>();
                  a->app = app;
                  app->add_option("config", a->config,
                                  "Experiment YAML (its data:, seed: and topology's workers); "
                                  "flags override it");
                  app->add_option("--dataset", a->dataset, "fashion_mnist | mnist | synthetic");
                  app->add_option("--root", a->root, "Directory of the idx files");
                  app->add_option("--synthetic-samples", a->synthetic_samples,
                                  "Training samples of the synthetic dataset");
                  app->add_option("--workers", a->workers,
                                  "Number of workers (default: the config's, else 8)");
                  app->add_option("--method", a->method, "iid | dirichlet | shards");
                  app->add_option("--alpha", a->alpha, "Dirichlet label concentration");
                  app->add_option("--samples-alpha", a->samples_alpha,
                                  "Dirichlet sample-count concentration (0 = equal sizes)");
                  app->add_option("--shards-per-worker", a->shards_per_worker,
                                  "Shards per worker (method shards)");
                  app->add_option("--seed", a->seed, "Partition seed (default: config seed or 0)");
                  app->add_flag("--json", a->json, "One JSON object instead of a table");
                  return [a] { return show(*a); };
                }});

}  // namespace
}  // namespace flight::cli
