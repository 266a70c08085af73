// `flight bench train`: local-training throughput, evaluation throughput and
// the cost of loading + partitioning Fashion-MNIST for 1,000 workers.
//
// Cases (one JSON line each, DESIGN.md "Benchmarks"):
//   train          samples/s of learning::train (index_select batches from the
//                  shared dataset, SGD, loss/accuracy bookkeeping); baseline
//                  `raw_libtorch_loop`: the same model's forward + loss +
//                  backward + the same SGD update over pre-sliced contiguous
//                  batches, nothing else — the trainer's overhead is 1 - ratio.
//   evaluate       samples/s of learning::evaluate (batches of 1024); baseline
//                  `raw_forward`: forward passes over the same contiguous
//                  batches in inference mode, no loss or accuracy.
//   load_partition seconds to read the four gzipped idx files into normalised
//                  tensors (no cache) and partition the training set for 1,000
//                  workers, per method; baseline `raw_gunzip`: just inflating
//                  the same four files (ratio = baseline / value).
// Inputs are Fashion-MNIST shaped: [N, 1, 28, 28] (resnet18 is the CIFAR-style
// net on 1x28x28 input). Runs with --threads intra-op threads (default 1, as
// one virtual worker would on a shared machine).
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <c10/core/InferenceMode.h>
#include <zlib.h>

#include <time.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>

#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/learning/dataset.h"
#include "flight/learning/partition.h"
#include "flight/learning/trainer.h"

namespace flight::bench {
namespace {

struct BenchArgs {
  std::string models = "mlp,lenet5,resnet18";
  std::string cases = "train,evaluate,load_partition";
  int64_t batch_size = 32;
  int threads = 1;
  double seconds = 1.0;
  int64_t workers = 1000;
};

// Raw training loop: contiguous batches, forward, loss, backward, SGD update.
double raw_train_seconds(learning::Model& model, const learning::Dataset& data, int64_t batch,
                         int64_t steps, double lr) {
  at::AutoGradMode grad_on(true);
  model.train(true);
  ParamSet params = model.trainable();
  Stopwatch watch;
  for (int64_t s = 0; s < steps; ++s) {
    int64_t start = (s * batch) % (data.size() - batch);
    at::Tensor x = data.images.narrow(0, start, batch);
    at::Tensor y = data.labels.narrow(0, start, batch);
    for (auto& e : params) {
      if (e.tensor.grad().defined()) e.tensor.mutable_grad().zero_();
    }
    at::cross_entropy_loss(model.forward(x), y).backward();
    at::NoGradGuard no_grad;
    for (auto& e : params) {
      at::Tensor p = e.tensor;
      p.sub_(p.grad(), lr);
    }
  }
  return watch.seconds();
}

double raw_forward_seconds(learning::Model& model, const learning::Dataset& data, int64_t batch) {
  model.train(false);
  c10::InferenceMode inference;
  Stopwatch watch;
  for (int64_t start = 0; start < data.size(); start += batch) {
    at::Tensor logits =
        model.forward(data.images.narrow(0, start, std::min(batch, data.size() - start)));
    (void)logits;
  }
  return watch.seconds();
}

learning::Dataset head(const learning::Dataset& d, int64_t n) {
  learning::Dataset out;
  n = std::min(n, d.size());
  out.images = d.images.narrow(0, 0, n);
  out.labels = d.labels.narrow(0, 0, n);
  out.num_classes = d.num_classes;
  return out;
}

int bench_model(const BenchArgs& a, const std::string& name, const learning::DatasetPair& data,
                const std::string& data_name, bool do_train, bool do_eval) {
  learning::ModelSpec spec;
  spec.name = name;
  auto model = learning::make_model(spec);
  if (!model.is_ok()) return fail(model.status().message());
  learning::Model& m = **model;
  ParamSet global = m.state().clone();
  nlohmann::json params = {{"model", name},
                           {"threads", a.threads},
                           {"data", data_name},
                           {"input", "1x28x28"},
                           {"parameters", m.trainable().numel()}};

  if (do_train) {
    learning::TrainOptions opt;
    opt.batch_size = a.batch_size;
    opt.lr = 0.01;
    // Warm up (allocator, kernels) and size the run to about --seconds.
    opt.max_steps = 1;
    std::vector<int64_t> indices(static_cast<size_t>(data.train->size()));
    std::iota(indices.begin(), indices.end(), 0);
    auto warm = learning::train(m, global, *data.train, indices, opt, 0, nullptr);
    if (!warm.is_ok()) return fail(warm.status().message());
    double per_step = std::max(1e-4, warm->seconds);
    int64_t steps = std::clamp<int64_t>(static_cast<int64_t>(a.seconds / per_step), 2,
                                        data.train->size() / a.batch_size - 1);
    opt.max_steps = steps;
    // Interleaved repetitions (the machine is shared); one when a run is long.
    int reps = per_step * static_cast<double>(steps) > a.seconds * 1.5 ? 1 : 2;
    double trainer_s = 1e300, raw_s = 1e300;
    for (int rep = 0; rep < reps; ++rep) {
      auto r = learning::train(m, global, *data.train, indices, opt, rep, nullptr);
      if (!r.is_ok()) return fail(r.status().message());
      trainer_s = std::min(trainer_s, r->seconds);
      if (!m.load_state(global).is_ok()) return fail("cannot reload the model state");
      raw_s = std::min(raw_s, raw_train_seconds(m, *data.train, a.batch_size, steps, opt.lr));
    }
    double samples = static_cast<double>(steps * a.batch_size);
    BenchRecord rec;
    rec.bench = "train";
    rec.case_name = "train";
    rec.params = params;
    rec.params["batch_size"] = a.batch_size;
    rec.value = samples / trainer_s;
    rec.unit = "samples/s";
    rec.baseline = "raw_libtorch_loop";
    rec.baseline_value = samples / raw_s;
    rec.extra = {{"steps", steps}};
    emit_bench(rec);
  }

  if (do_eval) {
    const int64_t batch = 1024;
    // A small probe sizes the run: resnet18 evaluates tens of samples per
    // second on one thread, mlp thousands.
    const int64_t probe_n = 128;
    learning::Dataset probe = head(*data.test, probe_n);
    Stopwatch w;
    auto warm = learning::evaluate(m, global, probe, batch);
    if (!warm.is_ok()) return fail(warm.status().message());
    double per_sample = std::max(1e-7, w.seconds() / probe_n);
    int64_t n = std::clamp<int64_t>(static_cast<int64_t>(a.seconds / per_sample), probe_n,
                                    data.test->size());
    learning::Dataset subset = head(*data.test, n);
    int reps = per_sample * static_cast<double>(n) > a.seconds * 1.5 ? 1 : 2;
    double eval_s = 1e300, raw_s = 1e300;
    for (int rep = 0; rep < reps; ++rep) {
      Stopwatch sw;
      auto r = learning::evaluate(m, global, subset, batch);
      if (!r.is_ok()) return fail(r.status().message());
      eval_s = std::min(eval_s, sw.seconds());
      raw_s = std::min(raw_s, raw_forward_seconds(m, subset, batch));
    }
    BenchRecord rec;
    rec.bench = "train";
    rec.case_name = "evaluate";
    rec.params = params;
    rec.params["batch_size"] = batch;
    rec.value = static_cast<double>(subset.size()) / eval_s;
    rec.unit = "samples/s";
    rec.baseline = "raw_forward";
    rec.baseline_value = static_cast<double>(subset.size()) / raw_s;
    rec.extra = {{"samples", subset.size()}};
    emit_bench(rec);
  }
  return kExitOk;
}

// CPU seconds used by this process so far (user + system).
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Seconds to inflate the four idx files without parsing them.
StatusOr<double> raw_gunzip_seconds(const std::string& root) {
  Stopwatch watch;
  std::vector<char> buf(1 << 20);
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    std::string path = root + "/" + f;
    gzFile g = gzopen(path.c_str(), "rb");
    if (g == nullptr) return not_found("cannot open '" + path + "'");
    gzbuffer(g, 1 << 20);
    while (gzread(g, buf.data(), static_cast<unsigned>(buf.size())) > 0) {
    }
    gzclose(g);
  }
  return watch.seconds();
}

int bench_load_partition(const BenchArgs& a) {
  learning::DataSpec spec;  // Fashion-MNIST at the Debian path
  auto gunzip = raw_gunzip_seconds(spec.root);
  if (!gunzip.is_ok()) return fail(gunzip.status().message());
  for (const char* method : {"iid", "dirichlet", "shards"}) {
    learning::PartitionSpec ps;
    ps.method = method;
    ps.alpha = 0.5;
    double load_s = 1e300, part_s = 1e300, base_s = *gunzip, load_cpu = 0;
    for (int rep = 0; rep < 2; ++rep) {
      Stopwatch w;
      double cpu0 = cpu_seconds();
      auto d = learning::read_dataset(spec);
      if (!d.is_ok()) return fail(d.status().message());
      double l = w.seconds();
      double c = cpu_seconds() - cpu0;
      Stopwatch pw;
      auto parts = learning::partition(d->train->labels, static_cast<size_t>(a.workers), ps, 1);
      if (!parts.is_ok()) return fail(parts.status().message());
      double p = pw.seconds();
      if (l + p < load_s + part_s) {
        load_s = l;
        part_s = p;
        load_cpu = c;
      }
      auto g = raw_gunzip_seconds(spec.root);
      if (g.is_ok()) base_s = std::min(base_s, *g);
    }
    BenchRecord rec;
    rec.bench = "train";
    rec.case_name = "load_partition";
    rec.params = {{"dataset", "fashion_mnist"}, {"workers", a.workers}, {"method", method}};
    if (ps.method == "dirichlet") rec.params["alpha"] = ps.alpha;
    rec.value = load_s + part_s;
    rec.unit = "s";
    rec.higher_is_better = false;
    rec.baseline = "raw_gunzip";
    rec.baseline_value = base_s;
    // CPU time too: on a shared machine wall time includes waiting for a core.
    rec.extra = {
        {"load_seconds", load_s}, {"load_cpu_seconds", load_cpu}, {"partition_seconds", part_s}};
    emit_bench(rec);
  }
  return kExitOk;
}

int run(const BenchArgs& a) {
  if (a.threads < 1) return usage_error("--threads must be >= 1");
  if (a.batch_size < 1) return usage_error("--batch-size must be >= 1");
  if (a.workers < 1) return usage_error("--workers must be >= 1");
  at::set_num_threads(a.threads);
  std::vector<std::string> cases = split(a.cases, ',');
  auto wants = [&](const char* c) {
    return std::find(cases.begin(), cases.end(), c) != cases.end();
  };
  for (const auto& c : cases) {
    if (c != "train" && c != "evaluate" && c != "load_partition") {
      return usage_error("unknown case '" + c + "'" +
                         did_you_mean(c, {"train", "evaluate", "load_partition"}) +
                         " (known: train, evaluate, load_partition)");
    }
  }
  if (wants("train") || wants("evaluate")) {
    // Real data when installed; the synthetic set has the same shape.
    std::string data_name = "fashion_mnist";
    auto data = learning::load_dataset(learning::DataSpec{});
    if (!data.is_ok()) {
      std::cerr << "flight bench train: " << data.status().message()
                << "; using the synthetic dataset\n";
      learning::DataSpec syn;
      syn.dataset = "synthetic";
      data_name = "synthetic";
      data = learning::load_dataset(syn);
      if (!data.is_ok()) return fail(data.status().message());
    }
    for (const auto& name : split(a.models, ',')) {
      int rc = bench_model(a, trim(name), *data, data_name, wants("train"), wants("evaluate"));
      if (rc != kExitOk) return rc;
    }
  }
  if (wants("load_partition")) return bench_load_partition(a);
  return kExitOk;
}

FLIGHT_BENCH(
    bench_train,
    {"train", "Training/evaluation samples/s per model; Fashion-MNIST load + partition time",
     [](CLI::App* app) {
       auto a = std::make_shared<BenchArgs>();
       app->add_option("--models", a->models, "Comma-separated built-in models")
           ->capture_default_str();
       app->add_option("--cases", a->cases, "Comma-separated cases")->capture_default_str();
       app->add_option("--batch-size", a->batch_size, "Training batch size")->capture_default_str();
       app->add_option("--threads", a->threads, "Intra-op torch threads")->capture_default_str();
       app->add_option("--seconds", a->seconds, "Approximate time per measurement")
           ->capture_default_str();
       app->add_option("--workers", a->workers, "Workers for load_partition")
           ->capture_default_str();
       return [a] { return run(*a); };
     }});

}  // namespace
}  // namespace flight::bench
