#include "flight/params/param_set.h"

#include <ATen/ops/equal.h>

#include <sstream>

namespace flight {

void ParamSet::add(std::string name, at::Tensor tensor) {
  FLIGHT_CHECK(tensor.defined(), "ParamSet entry '" + name + "' has an undefined tensor");
  bool inserted = index_.emplace(name, entries_.size()).second;
  FLIGHT_CHECK(inserted, "ParamSet already has an entry named '" + name + "'");
  entries_.push_back(ParamEntry{std::move(name), std::move(tensor)});
}

const at::Tensor* ParamSet::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second].tensor;
}

at::Tensor* ParamSet::find(std::string_view name) {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second].tensor;
}

int64_t ParamSet::numel() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.tensor.numel();
  return n;
}

uint64_t ParamSet::nbytes() const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += static_cast<uint64_t>(e.tensor.numel()) * e.tensor.element_size();
  return n;
}

ParamSet ParamSet::clone() const {
  ParamSet out;
  out.entries_.reserve(entries_.size());
  for (const auto& e : entries_) out.add(e.name, e.tensor.clone(at::MemoryFormat::Contiguous));
  return out;
}

std::string describe_tensor(const at::Tensor& t) {
  std::ostringstream os;
  os << t.scalar_type() << "[";
  for (int64_t i = 0; i < t.dim(); ++i) os << (i ? ", " : "") << t.size(i);
  os << "]";
  return os.str();
}

Status ParamSet::check_compatible(const ParamSet& other) const {
  if (size() != other.size()) {
    return invalid_argument("parameter sets differ in length: " + std::to_string(size()) +
                            " vs " + std::to_string(other.size()) + " tensors");
  }
  for (size_t i = 0; i < size(); ++i) {
    const auto& a = entries_[i];
    const auto& b = other.entries_[i];
    if (a.name != b.name) {
      return invalid_argument("tensor " + std::to_string(i) + " is named '" + a.name +
                              "' in one parameter set and '" + b.name + "' in the other");
    }
    if (a.tensor.scalar_type() != b.tensor.scalar_type() || a.tensor.sizes() != b.tensor.sizes()) {
      return invalid_argument("tensor '" + a.name + "' is " + describe_tensor(a.tensor) +
                              " in one parameter set and " + describe_tensor(b.tensor) +
                              " in the other");
    }
  }
  return Status::ok();
}

bool ParamSet::equal(const ParamSet& other) const {
  if (!check_compatible(other).is_ok()) return false;
  for (size_t i = 0; i < size(); ++i) {
    if (!at::equal(entries_[i].tensor, other.entries_[i].tensor)) return false;
  }
  return true;
}

}  // namespace flight
