#include "aggregators/ordered_fold.h"

#include <algorithm>
#include <exception>
#include <string>

#include "flight/base/check.h"

namespace flight::aggregators {

OrderedFold::OrderedFold(std::unique_ptr<Aggregation> fold, size_t children, size_t window,
                         Fetch fetch, Folded folded, size_t batch)
    : fold_(std::move(fold)),
      window_(window),
      batch_(batch),
      fetch_(std::move(fetch)),
      folded_cb_(std::move(folded)),
      slots_(children, Slot::kWaiting),
      weights_(children, 0.0),
      pending_(children) {
  FLIGHT_CHECK(fold_ != nullptr, "OrderedFold: null Aggregation");
  FLIGHT_CHECK(window_ >= 1, "OrderedFold: window must be >= 1");
  FLIGHT_CHECK(batch_ >= 1 && batch_ <= window_, "OrderedFold: batch must be in [1, window]");
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
    if (slots_[next_] == Slot::kSkipped) {
      ++skipped_;
      done(next_);
      continue;
    }
    // The run of arrived children from next_ (all resolved: within the window).
    const size_t cap = std::min(slots_.size(), next_ + batch_);
    size_t end = next_ + 1;
    while (end < cap && slots_[end] == Slot::kArrived) ++end;
    if (end < cap && slots_[end] == Slot::kWaiting) return Status::ok();  // it may grow
    FLIGHT_RETURN_IF_ERROR(fold_run(end));
  }
  return Status::ok();
}

// Child k is folded or skipped: the window slides, and children that
// reported ahead of it and now fall inside are resolved.
void OrderedFold::done(size_t k) {
  slots_[k] = Slot::kDone;
  ++next_;
  const size_t limit = std::min(slots_.size(), next_ + window_);
  for (; fetch_limit_ < limit; ++fetch_limit_) {
    if (slots_[fetch_limit_] == Slot::kArrived) start_fetch(fetch_limit_);
  }
}

Status OrderedFold::fold_run(size_t end) {
  const size_t first = next_;
  std::vector<Update> updates;
  updates.reserve(end - first);
  Status failed = Status::ok();
  for (size_t k = first; k < end; ++k) {
    StatusOr<Update> update = internal_error("not fetched");
    try {
      update = pending_[k].get();
    } catch (const std::exception& e) {
      update = internal_error(std::string("fetch failed: ") + e.what());
    }
    pending_[k] = Pending();
    --resolved_;
    if (!update.is_ok()) {
      // The children before it are folded; the fold fails at k.
      // (Later fetches stay pending: the destructor waits for them.)
      failed = update.status().with_context("position " + std::to_string(k));
      break;
    }
    updates.push_back(std::move(update).value());
  }
  // Consecutive encoded updates go as one batch; decoded ones one by one.
  size_t j = 0;
  while (j < updates.size()) {
    const size_t k = first + j;
    size_t m = j + 1;
    if (updates[j].encoded) {
      while (m < updates.size() && updates[m].encoded) ++m;
    }
    Status st;
    size_t folded = 0;
    if (m - j == 1) {
      st = updates[j].encoded ? fold_->accumulate_encoded(*updates[j].encoded, weights_[k])
                              : fold_->accumulate(updates[j].params, weights_[k]);
      folded = st.is_ok() ? 1 : 0;
    } else {
      std::vector<const EncodedUpdate*> batch;
      std::vector<double> w;
      for (size_t r = j; r < m; ++r) {
        batch.push_back(updates[r].encoded.get());
        w.push_back(weights_[first + r]);
      }
      const size_t before = fold_->count();
      st = fold_->accumulate_encoded_batch(batch, w);
      folded = fold_->count() - before;
      if (!st.is_ok() && folded == 0) {
        // Nothing of the batch went in: one by one, so the error names its child.
        for (st = Status::ok(); folded < m - j && st.is_ok();) {
          st = fold_->accumulate_encoded(*batch[folded], w[folded]);
          if (st.is_ok()) ++folded;
        }
      }
    }
    for (size_t r = j; r < j + folded; ++r) {
      // Drop our handle before the caller releases the object (evicts it).
      updates[r] = Update();
      ++folded_;
      if (folded_cb_) folded_cb_(first + r);
      done(first + r);
    }
    if (!st.is_ok()) {
      status_ = st.with_context("position " + std::to_string(first + j + folded));
      return status_;
    }
    j = m;
  }
  if (!failed.is_ok()) status_ = failed;
  return status_;
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
