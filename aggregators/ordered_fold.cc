#include "aggregators/ordered_fold.h"

#include <algorithm>
#include <exception>
#include <string>

#include "flight/base/check.h"

namespace flight::aggregators {

OrderedFold::OrderedFold(std::unique_ptr<Aggregation> fold, size_t children, size_t window,
                         Fetch fetch, Folded folded)
    : fold_(std::move(fold)),
      window_(window),
      fetch_(std::move(fetch)),
      folded_cb_(std::move(folded)),
      slots_(children, Slot::kWaiting),
      weights_(children, 0.0),
      pending_(children) {
  FLIGHT_CHECK(fold_ != nullptr, "OrderedFold: null Aggregation");
  FLIGHT_CHECK(window_ >= 1, "OrderedFold: window must be >= 1");
  FLIGHT_CHECK(static_cast<bool>(fetch_), "OrderedFold: no fetch function");
  fetch_limit_ = std::min(children, window_);
}

OrderedFold::~OrderedFold() {
  // Fetches in flight may read the caller's data (Refs, a Store): let them end.
  for (auto& p : pending_) {
    if (p.valid()) p.wait();
  }
}

OrderedFold::Pending OrderedFold::ready(StatusOr<ParamSet> value) {
  return Pending::ready(std::move(value));
}
OrderedFold::Pending OrderedFold::ready(StatusOr<Encoded> value) {
  return Pending::ready(std::move(value));
}
OrderedFold::Pending OrderedFold::ready(Status error) { return Pending::ready(std::move(error)); }

Status OrderedFold::arrive(size_t index, double weight) { return report(index, true, weight); }

Status OrderedFold::skip(size_t index) { return report(index, false, 0.0); }

Status OrderedFold::report(size_t index, bool arrived, double weight) {
  if (!status_.is_ok()) return status_;
  if (index >= slots_.size()) {
    return invalid_argument("position " + std::to_string(index) + " is outside [0, " +
                            std::to_string(slots_.size()) + ")");
  }
  if (slots_[index] != Slot::kWaiting) {
    return invalid_argument("position " + std::to_string(index) + " reported twice");
  }
  ++reported_;
  if (!arrived) {
    slots_[index] = Slot::kSkipped;
  } else {
    slots_[index] = Slot::kArrived;
    weights_[index] = weight;
    // Within the window: resolve now, so the fetch overlaps the wait for the
    // children before it. Beyond: only the index is kept.
    if (index < fetch_limit_) start_fetch(index);
  }
  return advance();
}

void OrderedFold::start_fetch(size_t index) {
  try {
    pending_[index] = fetch_(index);
  } catch (const std::exception& e) {
    pending_[index] = ready(internal_error(std::string("fetch threw: ") + e.what()));
  }
  if (!pending_[index].valid()) pending_[index] = ready(internal_error("fetch gave no future"));
  ++resolved_;
  peak_resolved_ = std::max(peak_resolved_, resolved_);
}

Status OrderedFold::advance() {
  while (next_ < slots_.size() && slots_[next_] != Slot::kWaiting) {
    const size_t k = next_;
    if (slots_[k] == Slot::kArrived) {
      StatusOr<Update> update = internal_error("not fetched");
      try {
        update = pending_[k].get();
      } catch (const std::exception& e) {
        update = internal_error(std::string("fetch failed: ") + e.what());
      }
      pending_[k] = Pending();
      --resolved_;
      if (!update.is_ok()) {
        status_ = update.status().with_context("position " + std::to_string(k));
        return status_;
      }
      Status st = update->encoded ? fold_->accumulate_encoded(*update->encoded, weights_[k])
                                  : fold_->accumulate(update->params, weights_[k]);
      if (!st.is_ok()) {
        status_ = st.with_context("position " + std::to_string(k));
        return status_;
      }
      // Drop our handle before the caller releases the object (evicts it).
      update = internal_error("folded");
      ++folded_;
      if (folded_cb_) folded_cb_(k);
    } else {
      ++skipped_;
    }
    slots_[k] = Slot::kDone;
    ++next_;
    // The window slides: children that reported ahead of it and now fall
    // inside are resolved.
    const size_t limit = std::min(slots_.size(), next_ + window_);
    for (; fetch_limit_ < limit; ++fetch_limit_) {
      if (slots_[fetch_limit_] == Slot::kArrived) start_fetch(fetch_limit_);
    }
  }
  return Status::ok();
}

StatusOr<Weighted> OrderedFold::finalize() {
  if (!status_.is_ok()) return status_;
  if (next_ != slots_.size()) {
    return failed_precondition("ordered fold: " + std::to_string(slots_.size() - reported_) +
                               " of " + std::to_string(slots_.size()) +
                               " children have not reported");
  }
  return fold_->finalize();
}

}  // namespace flight::aggregators
