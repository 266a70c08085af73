// Arithmetic over ParamSets: the fused, allocation-free kernels that
// aggregation and server optimizers are built from.
//
// Dtype policy (shared by every strategy in aggregators/):
// - "Floating" tensors (float32, float64, float16, bfloat16) take part in the
//   arithmetic. float32 and float64 run a raw-pointer loop the compiler
//   vectorises, split across the intra-op thread pool (at::parallel_for) for
//   large tensors; float16/bfloat16 go through ATen ops (correct, not tuned).
// - Non-floating tensors (integer buffers such as BatchNorm's
//   num_batches_tracked, bool masks) are never scaled or averaged: every
//   combining operation here takes their elementwise maximum (logical OR for
//   bool). Max is associative and commutative, so it gives the same answer
//   through any aggregation tree. Complex tensors are rejected.
//
// Threads: large tensors are split into chunks run on a small process-wide
// pool (hardware_concurrency - 1 helpers plus the calling thread), independent
// of ATen's intra-op setting (which trainers often pin to 1). Several callers
// may run at once; a caller never waits for a busy pool: it runs whatever
// chunks no helper has claimed.
//
// Preconditions: tensors live on the CPU and carry no autograd history that
// matters (updates are plain data). Destination tensors ("acc", "y") must be
// contiguous; sources may be any layout (made contiguous on the fly).
//
// Thread safety: functions are reentrant; callers must not mutate the same
// destination from two threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "flight/base/status.h"
#include "flight/params/param_set.h"

namespace flight {

// Runs f(begin, end) over [0, n) in at most 4 x param_ops_threads() contiguous
// chunks of at least `grain` elements (one chunk, on the caller, when n is
// small). Chunk boundaries depend only on n, grain and the thread count, so
// per-chunk reductions combined in chunk order are reproducible. f must not
// call parallel_chunks itself. An exception from f is rethrown on the caller.
void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);
// Threads used by parallel_chunks (including the caller); n <= 0 restores
// the default, std::thread::hardware_concurrency().
void set_param_ops_threads(int n);
int param_ops_threads();

// float32, float64, float16, bfloat16.
bool is_floating(const at::Tensor& t);

// OK when every tensor has a dtype these operations support (not complex) and
// lives on the CPU; otherwise InvalidArgument naming the tensor.
Status check_supported(const ParamSet& p);

// Contiguous zeros with the same names, dtypes and shapes.
ParamSet zeros_like(const ParamSet& p);

// Tensor kernels (dtypes must match except where noted; shapes must match).
// acc += w * x (floating), acc = max(acc, x) (non-floating). acc may be a wider
// floating dtype than x (e.g. float32 acc, float16 x).
void add_scaled_(at::Tensor& acc, const at::Tensor& x, double w);
// dst = w * x (floating), dst = x (non-floating). dst must be allocated.
void assign_scaled_(at::Tensor& dst, const at::Tensor& x, double w);
// y = a * y + b * x (floating), y = max(y, x) (non-floating).
void axpby_(at::Tensor& y, double a, const at::Tensor& x, double b);
// t *= s (floating); no-op for non-floating.
void scale_(at::Tensor& t, double s);
// t /= d (floating; a true division, which rounds better than *1/d); no-op for
// non-floating.
void divide_(at::Tensor& t, double d);

// ParamSet forms. Each first checks that the operands are compatible (same
// names, order, dtypes, shapes) and returns InvalidArgument naming the first
// offending tensor, leaving the destination untouched.
Status add_scaled(ParamSet& acc, const ParamSet& x, double w);
Status axpby(ParamSet& y, double a, const ParamSet& x, double b);
void scale(ParamSet& p, double s);

// a - b for floating tensors; non-floating tensors are copied from a.
StatusOr<ParamSet> subtract(const ParamSet& a, const ParamSet& b);

// Sum over floating tensors of ||a - b||^2, accumulated in double.
StatusOr<double> squared_distance(const ParamSet& a, const ParamSet& b);

// ||a - b||^2 over n floats on the calling thread: vectorised float lanes,
// flushed to a double every few thousand elements (error does not grow with n).
double squared_distance_f32(const float* a, const float* b, int64_t n);

}  // namespace flight
