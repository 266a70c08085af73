// `flight bench aggregate`: what folding K model updates costs.
//
// Cases (one JSON line each, DESIGN.md "Benchmarks"), for every K in --k and
// every update size in --numel (float32 elements, one tensor per update):
//   fedavg  effective GB/s = bytes of all K updates / time of one fold
//           (begin, K accumulate()s with distinct weights, finalize()).
//           Baseline `memcpy`: copying the same K updates, one after another,
//           into one model-sized buffer with the same threads (the practical
//           limit for touching those bytes once). The fold moves 12 bytes per
//           element (read x, read + write acc) against memcpy's 8, so ~0.67 is
//           the ceiling when memory-bound.
//   median  seconds for the coordinate-wise median of the K updates.
//   krum    seconds for krum (f = 1) over the K updates (needs K >= 5; smaller
//           K is skipped).
//   Both report baseline `fedavg_same_updates` (the fold's time on the same
//   updates; ratio = fedavg time / their time, i.e. how far from one
//   memory-bound pass they are).
//   fold_int8, fold_fp16 (not in the default --cases)
//           the engine's fold of K encoded child updates (int8 / fp16 bytes in
//           a memory Store, fedavg, ChildFold with window 8: fetch, checksum,
//           fold, finalize), reading each child's bytes in place
//           (decode-while-folding). value: encoded GB/s = K x encoded update
//           bytes / time. Baseline `decode_then_fold`: the same ChildFold and
//           bytes with a fold that asks for decoded ParamSets (Store::get
//           decodes each child to float32, then the weighted mean folds it).
//           Extra: heap_per_waiting_child_mb for both paths, the heap held
//           per child resolved ahead of the fold (a float copy, or nothing).
// Memory: the updates come from a pool of at most --max-gb of distinct
// buffers; when K x size exceeds it, the K updates cycle through the pool
// (reported as "distinct_updates"). Each pooled 25M-element update (100 MB)
// is about the size of this machine's L3, so consecutive reads of different
// buffers still come from DRAM. Times are the best of --repeat runs.
#include <ATen/ops/empty.h>
#include <ATen/ops/rand.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <malloc.h>

#include "aggregators/strategy.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"
#include "flight/bench/record.h"
#include "flight/bench/registry.h"
#include "flight/engine/child_fold.h"
#include "flight/params/param_ops.h"
#include "transport/store.h"

namespace flight::bench {
namespace {

struct AggregateBenchArgs {
  std::string ks = "2,16,64";
  std::string numels = "1000000,25000000";
  std::string cases = "fedavg,median,krum";
  int repeat = 3;
  double max_gb = 2.0;
  int threads = 0;  // 0: all cores (param_ops default)
};

// The fold under test, through the public Strategy API the engine uses.
StatusOr<double> time_fold(aggregators::Strategy& s, const std::vector<ParamSet>& updates) {
  Stopwatch watch;
  auto agg = s.begin();
  for (size_t i = 0; i < updates.size(); ++i) {
    FLIGHT_RETURN_IF_ERROR(agg->accumulate(updates[i], static_cast<double>(100 + i)));
  }
  FLIGHT_ASSIGN_OR_RETURN(aggregators::Weighted w, agg->finalize());
  double t = watch.seconds();
  if (w.params.empty()) return internal_error("empty aggregate");
  return t;
}

// Baseline: each update copied into one model-sized buffer, chunks split
// across the same threads as the fold (flight::parallel_chunks).
double time_memcpy(const std::vector<ParamSet>& updates, at::Tensor& dest) {
  Stopwatch watch;
  char* d = static_cast<char*>(dest.data_ptr());
  for (const auto& u : updates) {
    const char* src = static_cast<const char*>(u[0].tensor.data_ptr());
    const int64_t bytes = u[0].tensor.numel() * 4;
    parallel_chunks(bytes, 1 << 18, [&](int64_t b, int64_t e) {
      std::memcpy(d + b, src + b, static_cast<size_t>(e - b));
    });
  }
  return watch.seconds();
}

// decode_then_fold's fold: the weighted mean, minus folds_encoded(), so
// ChildFold hands it decoded ParamSets.
class DecodeFirst : public aggregators::Aggregation {
 public:
  explicit DecodeFirst(std::unique_ptr<aggregators::Aggregation> inner)
      : inner_(std::move(inner)) {}
  Status accumulate(const ParamSet& update, double weight) override {
    return inner_->accumulate(update, weight);
  }
  size_t count() const override { return inner_->count(); }
  StatusOr<aggregators::Weighted> finalize() override { return inner_->finalize(); }

 private:
  std::unique_ptr<aggregators::Aggregation> inner_;
};

size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// One engine fold of `children` (positions in order): seconds.
StatusOr<double> time_child_fold(std::unique_ptr<aggregators::Aggregation> agg,
                                 transport::Store& store,
                                 const std::vector<engine::ChildUpdate>& children) {
  Stopwatch watch;
  engine::ChildFold fold(std::move(agg), store, children.size(), 8);
  for (const auto& c : children) FLIGHT_RETURN_IF_ERROR(fold.add({c}));
  FLIGHT_ASSIGN_OR_RETURN(aggregators::Weighted w, fold.finalize());
  double t = watch.seconds();
  if (w.params.empty()) return internal_error("empty aggregate");
  return t;
}

// Heap held per child resolved ahead of the fold: children 1..n-1 arrive
// (all within the window) while child 0 is missing.
StatusOr<double> heap_per_waiting_child(std::unique_ptr<aggregators::Aggregation> agg,
                                        transport::Store& store,
                                        const std::vector<engine::ChildUpdate>& children) {
  const size_t n = std::min<size_t>(children.size(), 8);
  if (n < 2) return 0.0;
  engine::ChildFold fold(std::move(agg), store, n, n);
  const size_t before = heap_in_use();
  for (size_t i = n - 1; i >= 1; --i) {
    engine::ChildUpdate c = children[i];
    c.index = static_cast<int64_t>(i);
    FLIGHT_RETURN_IF_ERROR(fold.add({c}));
  }
  const double grown = static_cast<double>(heap_in_use()) - static_cast<double>(before);
  engine::ChildUpdate c = children[0];
  FLIGHT_RETURN_IF_ERROR(fold.add({c}));
  return grown / static_cast<double>(n - 1);
}

// fold_int8 / fold_fp16 at one (k, numel).
int fold_case(const std::string& name, transport::Encoding encoding, aggregators::Strategy& fedavg,
              int64_t k, int64_t numel, const AggregateBenchArgs& a, int threads) {
  transport::StoreOptions so;
  so.cache_bytes = 0;  // every get decodes, as a fetch from another process does
  auto store = transport::Store::create(nlohmann::json{{"kind", "memory"}}, so);
  if (!store.is_ok()) return fail("memory store: " + store.status().message());
  transport::PutOptions put;
  put.encoding.encoding = encoding;
  // Distinct encoded updates within --max-gb; beyond, the children cycle.
  const double approx_bytes =
      static_cast<double>(numel) * (encoding == transport::Encoding::kInt8 ? 1.02 : 2.0);
  const int64_t distinct = std::max<int64_t>(
      1, std::min<int64_t>(k, static_cast<int64_t>(a.max_gb * 1e9 / approx_bytes)));
  std::vector<transport::Ref> refs;
  for (int64_t i = 0; i < distinct; ++i) {
    ParamSet p;
    p.add("w", at::rand({numel}).sub_(0.5));
    put.encoding.seed = static_cast<uint64_t>(i);
    auto ref = (*store)->put(p, put);
    if (!ref.is_ok()) return fail("put: " + ref.status().message());
    refs.push_back(*ref);
  }
  std::vector<engine::ChildUpdate> children;
  for (int64_t i = 0; i < k; ++i) {
    engine::ChildUpdate c;
    c.node = "child-" + std::to_string(i);
    c.update = refs[static_cast<size_t>(i % distinct)];
    c.owned = false;
    c.weight = static_cast<double>(100 + i);
    c.index = i;
    children.push_back(std::move(c));
  }
  const double bytes = static_cast<double>(refs[0].size) * static_cast<double>(k);
  Status err = Status::ok();
  auto timed = [&](bool in_place) {
    return best_of(a.repeat, [&] {
      auto agg = fedavg.begin();
      auto t = in_place ? time_child_fold(std::move(agg), **store, children)
                        : time_child_fold(std::make_unique<DecodeFirst>(std::move(agg)), **store,
                                          children);
      if (!t.is_ok()) {
        err = t.status();
        return 1e300;
      }
      return *t;
    });
  };
  const double decode_s = timed(false);
  const double in_place_s = timed(true);
  if (!err.is_ok()) return fail(name + " failed: " + err.message());
  auto heap_decode =
      heap_per_waiting_child(std::make_unique<DecodeFirst>(fedavg.begin()), **store, children);
  auto heap_in_place = heap_per_waiting_child(fedavg.begin(), **store, children);
  if (!heap_decode.is_ok() || !heap_in_place.is_ok()) return fail(name + ": heap probe failed");
  BenchRecord r;
  r.bench = "aggregate";
  r.case_name = name;
  r.params = {
      {"k", k}, {"numel", numel}, {"encoding", transport::encoding_name(encoding)}, {"window", 8}};
  r.value = bytes / in_place_s / 1e9;
  r.unit = "GB/s";
  r.baseline = "decode_then_fold";
  r.baseline_value = bytes / decode_s / 1e9;
  r.extra = {{"seconds", in_place_s},
             {"baseline_seconds", decode_s},
             {"encoded_bytes_per_update", refs[0].size},
             {"heap_per_waiting_child_mb", *heap_in_place / 1e6},
             {"baseline_heap_per_waiting_child_mb", *heap_decode / 1e6},
             {"distinct_updates", distinct},
             {"threads", threads}};
  emit_bench(r);
  return kExitOk;
}

std::unique_ptr<aggregators::Strategy> strategy(const nlohmann::json& j) {
  auto o = aggregators::StrategyOptions::from_json(j);
  if (!o.is_ok()) return nullptr;
  auto s = aggregators::make_strategy(*o);
  return s.is_ok() ? std::move(s).value() : nullptr;
}

int run(const AggregateBenchArgs& a) {
  std::vector<int64_t> ks, numels;
  if (!parse_positive_ints(a.ks, &ks))
    return usage_error("--k must be a list of positive integers");
  if (!parse_positive_ints(a.numels, &numels)) {
    return usage_error("--numel must be a list of positive integers");
  }
  std::vector<std::string> cases;
  for (const auto& c : split(a.cases, ',')) {
    std::string t = trim(c);
    if (t.empty()) continue;
    const std::vector<std::string> known = {"fedavg", "median", "krum", "fold_int8", "fold_fp16"};
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      return usage_error("unknown case '" + t + "'" + did_you_mean(t, known) +
                         " (known: fedavg, median, krum, fold_int8, fold_fp16)");
    }
    cases.push_back(t);
  }
  auto wants = [&](const std::string& c) {
    return std::find(cases.begin(), cases.end(), c) != cases.end();
  };
  if (a.repeat < 1) return usage_error("--repeat must be >= 1");
  if (!(a.max_gb > 0)) return usage_error("--max-gb must be > 0");
  set_param_ops_threads(a.threads);
  const int threads = param_ops_threads();

  auto fedavg = strategy({{"name", "fedavg"}});
  auto median = strategy({{"name", "median"}});
  auto krum = strategy({{"name", "krum"}, {"params", {{"f", 1}}}});
  if (!fedavg || !median || !krum) return fail("could not create the strategies");
  const int64_t max_k = *std::max_element(ks.begin(), ks.end());

  for (int64_t numel : numels) {
    for (int64_t k : ks) {
      for (const auto& [name, e] : {std::pair{"fold_int8", transport::Encoding::kInt8},
                                    std::pair{"fold_fp16", transport::Encoding::kFp16}}) {
        if (!wants(name)) continue;
        if (int rc = fold_case(name, e, *fedavg, k, numel, a, threads); rc != kExitOk) return rc;
      }
    }
    if (!wants("fedavg") && !wants("median") && !wants("krum")) continue;
    const double update_bytes = static_cast<double>(numel) * 4;
    const int64_t pool_size = std::max<int64_t>(
        1, std::min<int64_t>(max_k, static_cast<int64_t>(a.max_gb * 1e9 / update_bytes)));
    std::vector<at::Tensor> pool;
    for (int64_t i = 0; i < pool_size; ++i) pool.push_back(at::rand({numel}));
    at::Tensor dest = at::empty({numel});
    dest.zero_();  // fault the pages in outside the timed region

    for (int64_t k : ks) {
      std::vector<ParamSet> updates;
      for (int64_t i = 0; i < k; ++i) {
        ParamSet p;
        p.add("w", pool[static_cast<size_t>(i % pool_size)]);
        updates.push_back(std::move(p));
      }
      const int64_t distinct = std::min(k, pool_size);
      if (distinct < k) {
        std::cerr << "flight bench aggregate: k=" << k << " numel=" << numel << " needs "
                  << human_bytes(update_bytes * k) << "; cycling " << distinct
                  << " distinct updates (--max-gb " << a.max_gb << ")" << std::endl;
      }
      const nlohmann::json params = {{"k", k}, {"numel", numel}, {"dtype", "float32"}};
      const double bytes = update_bytes * static_cast<double>(k);

      // The fold's time is also the robust cases' baseline.
      Status fold_error = Status::ok();
      double fold_s = best_of(a.repeat, [&] {
        auto t = time_fold(*fedavg, updates);
        if (!t.is_ok()) {
          fold_error = t.status();
          return 1e300;
        }
        return *t;
      });
      if (!fold_error.is_ok()) return fail("fedavg fold failed: " + fold_error.message());

      if (wants("fedavg")) {
        time_memcpy(updates, dest);  // warm-up
        double copy_s = best_of(a.repeat, [&] { return time_memcpy(updates, dest); });
        BenchRecord r;
        r.bench = "aggregate";
        r.case_name = "fedavg";
        r.params = params;
        r.value = bytes / fold_s / 1e9;
        r.unit = "GB/s";
        r.baseline = "memcpy";
        r.baseline_value = bytes / copy_s / 1e9;
        r.extra = {{"seconds", fold_s},
                   {"memcpy_seconds", copy_s},
                   {"distinct_updates", distinct},
                   {"threads", threads}};
        emit_bench(r);
      }

      auto robust = [&](const std::string& name, aggregators::Strategy& s,
                        const nlohmann::json& extra) -> int {
        Status err = Status::ok();
        double t = best_of(a.repeat, [&] {
          auto r = time_fold(s, updates);
          if (!r.is_ok()) {
            err = r.status();
            return 1e300;
          }
          return *r;
        });
        if (!err.is_ok()) return fail(name + " failed: " + err.message());
        BenchRecord r;
        r.bench = "aggregate";
        r.case_name = name;
        r.params = params;
        for (auto it = extra.begin(); it != extra.end(); ++it) r.params[it.key()] = it.value();
        r.value = t;
        r.unit = "s";
        r.baseline = "fedavg_same_updates";
        r.baseline_value = fold_s;
        r.higher_is_better = false;
        r.extra = {{"distinct_updates", distinct}, {"threads", threads}};
        emit_bench(r);
        return kExitOk;
      };
      if (wants("median")) {
        if (int rc = robust("median", *median, nlohmann::json::object()); rc != kExitOk) return rc;
      }
      if (wants("krum")) {
        if (k < 5) {
          std::cerr << "flight bench aggregate: krum skipped at k=" << k
                    << " (f = 1 needs more than 2f + 2 = 4 updates)" << std::endl;
        } else if (int rc = robust("krum", *krum, {{"f", 1}}); rc != kExitOk) {
          return rc;
        }
      }
    }
  }
  return kExitOk;
}

}  // namespace

FLIGHT_BENCH(
    bench_aggregate,
    {"aggregate",
     "Aggregation throughput: fedavg GB/s vs memcpy, median and krum time, "
     "decode-while-folding of int8/fp16 children vs decode-then-fold",
     [](CLI::App* app) {
       auto a = std::make_shared<AggregateBenchArgs>();
       app->add_option("--k", a->ks, "Numbers of updates, comma-separated")->capture_default_str();
       app->add_option("--numel", a->numels, "float32 elements per update, comma-separated")
           ->capture_default_str();
       app->add_option("--cases", a->cases, "fedavg,median,krum,fold_int8,fold_fp16")
           ->capture_default_str();
       app->add_option("--repeat", a->repeat, "Runs per case; the best is reported")
           ->capture_default_str();
       app->add_option("--max-gb", a->max_gb,
                       "Memory for distinct update buffers (GB); beyond it updates "
                       "cycle through the pool")
           ->capture_default_str();
       app->add_option("--threads", a->threads, "Threads for the folds and memcpy (0: all cores)")
           ->capture_default_str();
       return [a] { return run(*a); };
     }});

}  // namespace flight::bench
