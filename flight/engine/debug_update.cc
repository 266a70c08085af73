#include "flight/engine/debug_update.h"

#include <ATen/ops/add.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/scalar_tensor.h>

#include <cstring>

#include "flight/params/param_ops.h"

namespace flight::engine {
namespace {

double perturbation(int64_t worker_index) {
  return static_cast<double>(worker_index + 1) * 0x1p-20;
}

}  // namespace

const ParamSet& perturbed_copy(const ParamSet& global, int64_t worker_index) {
  thread_local ParamSet scratch;
  if (!scratch.check_compatible(global).is_ok()) {
    scratch = ParamSet();
    for (const auto& e : global) {
      scratch.add(e.name, at::empty(e.tensor.sizes(), e.tensor.options()));
    }
  }
  const double delta = perturbation(worker_index);
  for (size_t i = 0; i < global.size(); ++i) {
    at::Tensor& out = scratch[i].tensor;
    const at::Tensor& in = global[i].tensor;
    if (is_floating(in)) {
      at::add_out(out, in, at::scalar_tensor(delta, in.options()));
    } else {
      out.copy_(in);
    }
  }
  return scratch;
}

StatusOr<transport::SealedBytes> encode_perturbed(const ParamSet& global, int64_t worker_index) {
  FLIGHT_ASSIGN_OR_RETURN(auto writer, transport::EncodingWriter::begin(global));
  const double delta = perturbation(worker_index);
  for (size_t i = 0; i < global.size(); ++i) {
    const at::Tensor in = global[i].tensor.contiguous().cpu();
    const auto* src = static_cast<const uint8_t*>(in.data_ptr());
    Status st;
    if (in.scalar_type() == at::kFloat) {
      // What add_out computes for float32: one rounding of in + float(delta).
      const auto d = static_cast<float>(delta);
      st = writer.write(i, [src, d](uint8_t* chunk, uint64_t begin, uint64_t n) {
        const auto* __restrict x = reinterpret_cast<const float*>(src + begin);
        auto* __restrict y = reinterpret_cast<float*>(chunk);
        const uint64_t count = n / sizeof(float);
        for (uint64_t j = 0; j < count; ++j) y[j] = x[j] + d;
      });
    } else if (is_floating(in)) {
      // Other floating dtypes: ATen's own kernel, chunk by chunk (elementwise,
      // so the same bits as over the whole tensor).
      const at::Tensor flat = in.reshape({-1});
      const at::Tensor scalar = at::scalar_tensor(delta, in.options());
      const auto elem = static_cast<uint64_t>(in.element_size());
      st = writer.write(i, [&](uint8_t* chunk, uint64_t begin, uint64_t n) {
        at::Tensor out = at::from_blob(chunk, {static_cast<int64_t>(n / elem)}, in.options());
        at::add_out(out, flat.narrow(0, static_cast<int64_t>(begin / elem), out.numel()), scalar);
      });
    } else {
      st = writer.write(i, [src](uint8_t* chunk, uint64_t begin, uint64_t n) {
        std::memcpy(chunk, src + begin, n);
      });
    }
    FLIGHT_RETURN_IF_ERROR(st.with_context("debug update, tensor '" + global[i].name + "'"));
  }
  return std::move(writer).seal();
}

}  // namespace flight::engine
