#include "flight/params/param_ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace flight {
namespace {

// Below this many elements a tensor is folded on the calling thread: waking a
// helper costs more than it saves. Above it the loop is split across the pool
// (both cores here), which is what lets a fold approach memory bandwidth
// rather than one core's load throughput.
constexpr int64_t kParallelGrain = 1 << 16;

// One parallel_chunks call: chunks are claimed through an atomic counter by the
// caller and by any helper that picks up one of its tickets.
struct Job {
  const std::function<void(int64_t, int64_t)>* f = nullptr;
  int64_t n = 0;
  int64_t chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
  std::exception_ptr error;

  // Runs chunks until none is left unclaimed.
  void work() {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t b = n * c / chunks;
      const int64_t e = n * (c + 1) / chunks;
      try {
        (*f)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      }
    }
  }
};

class Pool {
 public:
  static Pool& instance() {
    // Leaked on purpose: helpers blocked on the queue must not be joined
    // during static destruction.
    static Pool* pool = new Pool(default_threads());
    return *pool;
  }

  static int default_threads() {
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }

  int threads() const { return threads_.load(); }
  void set_threads(int n) {
    n = n <= 0 ? default_threads() : n;
    std::lock_guard<std::mutex> lock(mu_);
    while (static_cast<int>(helpers_.size()) < n - 1) {
      helpers_.emplace_back([this] { loop(); });
      helpers_.back().detach();
    }
    threads_.store(n);
  }

  void post(std::shared_ptr<Job> job, int64_t tickets) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int64_t i = 0; i < tickets; ++i) queue_.push_back(job);
    }
    cv_.notify_all();
  }

 private:
  explicit Pool(int n) { set_threads(n); }

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job->work();
    }
  }

  std::atomic<int> threads_{1};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> helpers_;
};

template <typename F>
void for_chunks(int64_t n, const F& f) {
  if (n < 2 * kParallelGrain) {
    f(0, n);
  } else {
    parallel_chunks(n, kParallelGrain, f);
  }
}

// Raw loops: __restrict plus a trivial body is what the -O3 auto-vectoriser
// wants. No temporaries, one pass over memory per call.
template <typename T>
void add_scaled_raw(T* __restrict acc, const T* __restrict x, T w, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) acc[i] += w * x[i];
}
template <typename T>
void assign_scaled_raw(T* __restrict dst, const T* __restrict x, T w, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) dst[i] = w * x[i];
}
template <typename T>
void axpby_raw(T* __restrict y, T a, const T* __restrict x, T bcoef, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) y[i] = a * y[i] + bcoef * x[i];
}
template <typename T>
void scale_raw(T* __restrict t, T s, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) t[i] *= s;
}
template <typename T>
void divide_raw(T* __restrict t, T d, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) t[i] /= d;
}

bool fast_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

void combine_non_floating(at::Tensor& acc, const at::Tensor& x) {
  if (acc.scalar_type() == at::kBool) {
    acc.logical_or_(x);
  } else {
    acc.copy_(acc.maximum(x));
  }
}

Status check_pair(const ParamSet& a, const ParamSet& b) {
  FLIGHT_RETURN_IF_ERROR(a.check_compatible(b));
  FLIGHT_RETURN_IF_ERROR(check_supported(a));
  return Status::ok();
}

}  // namespace

void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  Pool& pool = Pool::instance();
  // A few chunks per thread: on a shared machine one helper may be descheduled,
  // and the others (the caller included) then take over its share.
  const int threads = pool.threads();
  const int64_t chunks =
      threads <= 1 ? 1
                   : std::min<int64_t>(int64_t{4} * threads,
                                       std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
  if (chunks <= 1) {
    f(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->f = &f;
  job->n = n;
  job->chunks = chunks;
  pool.post(job, chunks - 1);
  job->work();
  // Every chunk has been claimed; wait for helpers still running theirs. `f`
  // outlives the wait, so late helpers (which find nothing to claim) never
  // touch it.
  std::unique_lock<std::mutex> lock(job->mu);
  job->cv.wait(lock, [&] { return job->done.load() == chunks; });
  if (job->error) std::rethrow_exception(job->error);
}

void set_param_ops_threads(int n) { Pool::instance().set_threads(n); }
int param_ops_threads() { return Pool::instance().threads(); }

bool is_floating(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

Status check_supported(const ParamSet& p) {
  for (const auto& e : p) {
    if (at::isComplexType(e.tensor.scalar_type())) {
      return invalid_argument("tensor '" + e.name + "' is " + describe_tensor(e.tensor) +
                              ": complex tensors are not supported");
    }
    if (!e.tensor.device().is_cpu()) {
      return invalid_argument("tensor '" + e.name + "' is not on the CPU");
    }
  }
  return Status::ok();
}

ParamSet zeros_like(const ParamSet& p) {
  ParamSet out;
  for (const auto& e : p) {
    out.add(e.name, at::zeros(e.tensor.sizes(), e.tensor.options()));
  }
  return out;
}

void add_scaled_(at::Tensor& acc, const at::Tensor& x, double w) {
  FLIGHT_CHECK(acc.is_contiguous(), "add_scaled_: destination must be contiguous");
  FLIGHT_CHECK(acc.numel() == x.numel(), "add_scaled_: element counts differ");
  if (!is_floating(acc)) {
    combine_non_floating(acc, x);
    return;
  }
  if (fast_dtype(acc) && x.scalar_type() == acc.scalar_type()) {
    at::Tensor xc = x.contiguous();
    if (acc.scalar_type() == at::kFloat) {
      float* a = acc.data_ptr<float>();
      const float* px = xc.data_ptr<float>();
      const float wf = static_cast<float>(w);
      for_chunks(acc.numel(), [&](int64_t b, int64_t e) { add_scaled_raw(a, px, wf, b, e); });
    } else {
      double* a = acc.data_ptr<double>();
      const double* px = xc.data_ptr<double>();
      for_chunks(acc.numel(), [&](int64_t b, int64_t e) { add_scaled_raw(a, px, w, b, e); });
    }
    return;
  }
  acc.add_(x.reshape(acc.sizes()), w);
}

void assign_scaled_(at::Tensor& dst, const at::Tensor& x, double w) {
  FLIGHT_CHECK(dst.is_contiguous(), "assign_scaled_: destination must be contiguous");
  FLIGHT_CHECK(dst.numel() == x.numel(), "assign_scaled_: element counts differ");
  if (!is_floating(dst)) {
    dst.copy_(x.reshape(dst.sizes()));
    return;
  }
  if (fast_dtype(dst) && x.scalar_type() == dst.scalar_type()) {
    at::Tensor xc = x.contiguous();
    if (dst.scalar_type() == at::kFloat) {
      float* d = dst.data_ptr<float>();
      const float* px = xc.data_ptr<float>();
      const float wf = static_cast<float>(w);
      for_chunks(dst.numel(), [&](int64_t b, int64_t e) { assign_scaled_raw(d, px, wf, b, e); });
    } else {
      double* d = dst.data_ptr<double>();
      const double* px = xc.data_ptr<double>();
      for_chunks(dst.numel(), [&](int64_t b, int64_t e) { assign_scaled_raw(d, px, w, b, e); });
    }
    return;
  }
  dst.copy_(x.reshape(dst.sizes()));
  dst.mul_(w);
}

void axpby_(at::Tensor& y, double a, const at::Tensor& x, double b) {
  FLIGHT_CHECK(y.is_contiguous(), "axpby_: destination must be contiguous");
  FLIGHT_CHECK(y.numel() == x.numel(), "axpby_: element counts differ");
  if (!is_floating(y)) {
    combine_non_floating(y, x);
    return;
  }
  if (fast_dtype(y) && x.scalar_type() == y.scalar_type()) {
    at::Tensor xc = x.contiguous();
    if (y.scalar_type() == at::kFloat) {
      float* py = y.data_ptr<float>();
      const float* px = xc.data_ptr<float>();
      const float af = static_cast<float>(a);
      const float bf = static_cast<float>(b);
      for_chunks(y.numel(), [&](int64_t s, int64_t e) { axpby_raw(py, af, px, bf, s, e); });
    } else {
      double* py = y.data_ptr<double>();
      const double* px = xc.data_ptr<double>();
      for_chunks(y.numel(), [&](int64_t s, int64_t e) { axpby_raw(py, a, px, b, s, e); });
    }
    return;
  }
  y.mul_(a).add_(x.reshape(y.sizes()), b);
}

void scale_(at::Tensor& t, double s) {
  if (!is_floating(t)) return;
  if (fast_dtype(t) && t.is_contiguous()) {
    if (t.scalar_type() == at::kFloat) {
      float* p = t.data_ptr<float>();
      const float sf = static_cast<float>(s);
      for_chunks(t.numel(), [&](int64_t b, int64_t e) { scale_raw(p, sf, b, e); });
    } else {
      double* p = t.data_ptr<double>();
      for_chunks(t.numel(), [&](int64_t b, int64_t e) { scale_raw(p, s, b, e); });
    }
    return;
  }
  t.mul_(s);
}

void divide_(at::Tensor& t, double d) {
  if (!is_floating(t)) return;
  if (fast_dtype(t) && t.is_contiguous()) {
    if (t.scalar_type() == at::kFloat) {
      float* p = t.data_ptr<float>();
      const float df = static_cast<float>(d);
      for_chunks(t.numel(), [&](int64_t b, int64_t e) { divide_raw(p, df, b, e); });
    } else {
      double* p = t.data_ptr<double>();
      for_chunks(t.numel(), [&](int64_t b, int64_t e) { divide_raw(p, d, b, e); });
    }
    return;
  }
  t.div_(d);
}

Status add_scaled(ParamSet& acc, const ParamSet& x, double w) {
  FLIGHT_RETURN_IF_ERROR(check_pair(acc, x));
  for (size_t i = 0; i < acc.size(); ++i) add_scaled_(acc[i].tensor, x[i].tensor, w);
  return Status::ok();
}

Status axpby(ParamSet& y, double a, const ParamSet& x, double b) {
  FLIGHT_RETURN_IF_ERROR(check_pair(y, x));
  for (size_t i = 0; i < y.size(); ++i) axpby_(y[i].tensor, a, x[i].tensor, b);
  return Status::ok();
}

void scale(ParamSet& p, double s) {
  for (auto& e : p) scale_(e.tensor, s);
}

StatusOr<ParamSet> subtract(const ParamSet& a, const ParamSet& b) {
  FLIGHT_RETURN_IF_ERROR(check_pair(a, b));
  ParamSet out;
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor& ta = a[i].tensor;
    if (!is_floating(ta)) {
      out.add(a[i].name, ta.clone(at::MemoryFormat::Contiguous));
      continue;
    }
    at::Tensor d = ta.clone(at::MemoryFormat::Contiguous);
    add_scaled_(d, b[i].tensor, -1.0);
    out.add(a[i].name, std::move(d));
  }
  return out;
}

// AVX2 clone chosen at load time where the CPU has it (krum's cost is this loop).
__attribute__((target_clones("avx2", "default"))) double squared_distance_f32(const float* a,
                                                                              const float* b,
                                                                              int64_t n) {
  // 32 independent float lanes vectorise without -ffast-math (no reassociation
  // is needed); each block's partial sum moves to double so the error does not
  // grow with n.
  constexpr int64_t kLanes = 32;
  constexpr int64_t kBlock = 4096;
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lane[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes) {
      for (int64_t l = 0; l < kLanes; ++l) {
        const float d = a[i + l] - b[i + l];
        lane[l] += d * d;
      }
    }
    double block = 0;
    for (int64_t l = 0; l < kLanes; ++l) block += lane[l];
    for (; i < end; ++i) {
      const double d = static_cast<double>(a[i]) - b[i];
      block += d * d;
    }
    total += block;
  }
  return total;
}

StatusOr<double> squared_distance(const ParamSet& a, const ParamSet& b) {
  FLIGHT_RETURN_IF_ERROR(check_pair(a, b));
  double total = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor& ta = a[i].tensor;
    if (!is_floating(ta)) continue;
    if (ta.scalar_type() == at::kFloat) {
      at::Tensor ca = ta.contiguous();
      at::Tensor cb = b[i].tensor.contiguous();
      const float* pa = ca.data_ptr<float>();
      const float* pb = cb.data_ptr<float>();
      // Partial sums are added in chunk order so the result does not depend on
      // which thread finished first.
      std::mutex mu;
      std::vector<std::pair<int64_t, double>> parts;
      for_chunks(ca.numel(), [&](int64_t s, int64_t e) {
        double part = squared_distance_f32(pa + s, pb + s, e - s);
        std::lock_guard<std::mutex> lock(mu);
        parts.emplace_back(s, part);
      });
      std::sort(parts.begin(), parts.end());
      for (const auto& p : parts) total += p.second;
    } else {
      at::Tensor d = ta.to(at::kDouble).sub(b[i].tensor.to(at::kDouble));
      total += d.mul(d).sum().item<double>();
    }
  }
  return total;
}

}  // namespace flight
