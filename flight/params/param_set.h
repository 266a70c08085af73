// ParamSet: an ordered list of (name, tensor) — a model's state (parameters and
// buffers) or an update. The one torch type that aggregators, learning and
// transport share.
//
// Order is significant and preserved (it is the model's parameter order and the
// wire order). Names are unique. Tensors may have any dtype and shape; an empty
// ParamSet is valid.
//
// Ownership: a ParamSet holds at::Tensor handles (reference counted). Copying a
// ParamSet shares storage; use clone() for an independent deep copy.
// Thread safety: const methods may be called concurrently; mutation is not
// synchronised.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "flight/base/status.h"

namespace flight {

struct ParamEntry {
  std::string name;
  at::Tensor tensor;
};

class ParamSet {
 public:
  ParamSet() = default;

  // Appends an entry; a duplicate name is a broken invariant (FLIGHT_CHECK).
  void add(std::string name, at::Tensor tensor);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const ParamEntry& operator[](size_t i) const { return entries_[i]; }
  ParamEntry& operator[](size_t i) { return entries_[i]; }
  std::vector<ParamEntry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<ParamEntry>::const_iterator end() const { return entries_.end(); }
  std::vector<ParamEntry>::iterator begin() { return entries_.begin(); }
  std::vector<ParamEntry>::iterator end() { return entries_.end(); }

  // nullptr when absent.
  const at::Tensor* find(std::string_view name) const;
  at::Tensor* find(std::string_view name);

  // Total elements and total bytes of tensor data.
  int64_t numel() const;
  uint64_t nbytes() const;

  // Independent deep copy (contiguous tensors).
  ParamSet clone() const;

  // OK when `other` has the same names in the same order with the same dtypes
  // and shapes; otherwise InvalidArgument naming the first differing tensor.
  Status check_compatible(const ParamSet& other) const;

  // Bitwise equality of names, dtypes, shapes and values.
  bool equal(const ParamSet& other) const;

 private:
  std::vector<ParamEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// "float32[200, 784]" — for error messages.
std::string describe_tensor(const at::Tensor& t);

}  // namespace flight
