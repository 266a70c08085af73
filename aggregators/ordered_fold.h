// OrderedFold: a strategy's Aggregation fed in canonical order while the
// children report in any order.
//
// An aggregating node (an aggregator or the coordinator) knows, when a round
// starts, which children it waits for; the engine numbers them 0..n-1 in
// canonical order (sorted node ids). Child k is folded as soon as it has
// reported and children 0..k-1 are folded or skipped, so the result is
// bit-identical to folding the sorted list in one go (that keeps runs
// bit-reproducible whatever the arrival order), and memory does not wait for
// the slowest child:
//
//   OrderedFold fold(strategy.begin(), n, /*window=*/8,
//                    [&](size_t k) { return fetch_async(refs[k]); },  // Ref -> ParamSet
//                    [&](size_t k) { evict(refs[k]); });              // after k is folded
//   fold.arrive(3, w3);   // out of order: resolved now if within the window
//   fold.arrive(0, w0);   // folds 0, then 3 waits for 1 and 2
//   fold.skip(1);         // failed / late / dropped: skipped in order
//   ...
//   if (fold.complete()) Weighted result = *fold.finalize();
//
// Window: a reported child is resolved (fetch(k)) only when k < next() +
// window; a child reporting further ahead stays where the caller keeps it (a
// Ref in the store, not a decoded ParamSet) and is resolved when the window
// reaches it. So at most `window` updates are resolved at any time
// (resolved() <= window), whatever the number of children: memory per node is
// O(window x model) for the linear strategies. (Robust strategies' own
// Aggregation keeps every update; the window still bounds what waits.)
//
// fetch(k) returns a Pending of a decoded ParamSet or of an EncodedUpdate
// (strategy.h: bytes the fold dequantises in place; the caller offers them
// when the Aggregation folds_encoded()) — a future, so a caller may resolve children
// within the window concurrently (e.g. on a fetch pool), or a value already
// there (ready(): no future, no shared state to allocate); the fold waits
// for child k's only when k's turn comes. fetch and folded are called on the thread
// that calls arrive()/skip(), at most once per child each.
//
// Batches (batch > 1): encoded updates are folded in runs of up to `batch`
// consecutive children (Aggregation::accumulate_encoded_batch: one pass over
// the accumulator per run instead of one per child, the same bits). A run is
// folded once it holds `batch` children, reaches the last child or meets a
// skipped one; while the child after it has not reported, it waits (resolved:
// within the window, so resolved() <= window still holds). A caller that
// holds a credit per unfolded child must therefore allow more than batch - 1.
//
// Errors: an index out of range or reported twice is InvalidArgument and
// changes nothing. A failed fetch or accumulate makes the fold failed: that
// call and every later arrive/skip/finalize return the error (naming the
// child's position; the caller adds the node: the failed child is next()).
//
// Thread safety: none; one OrderedFold per aggregating node and round, used
// by one thread at a time. The destructor waits for fetches still in flight,
// so the caller's data they read must outlive the OrderedFold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/params/param_set.h"

namespace flight::aggregators {

class OrderedFold {
 public:
  // A resolved child: a decoded ParamSet, or encoded bytes the fold reads in
  // place (Aggregation::accumulate_encoded) when `encoded` is set.
  using Encoded = std::shared_ptr<const EncodedUpdate>;
  struct Update {
    ParamSet params;
    Encoded encoded;
  };
  // A child's update being resolved: a value already there, or a future.
  class Pending {
   public:
    Pending() = default;
    Pending(std::future<StatusOr<ParamSet>> future)  // NOLINT: a future is a Pending
        : future_(std::move(future)) {}
    Pending(std::future<StatusOr<Encoded>> future)  // NOLINT: a future is a Pending
        : encoded_future_(std::move(future)) {}
    static Pending ready(StatusOr<ParamSet> value) {
      Pending p;
      if (value.is_ok()) {
        p.value_.emplace(Update{std::move(value).value(), nullptr});
      } else {
        p.value_.emplace(value.status());
      }
      return p;
    }
    static Pending ready(StatusOr<Encoded> value) {
      Pending p;
      if (value.is_ok()) {
        p.value_.emplace(Update{ParamSet(), std::move(value).value()});
      } else {
        p.value_.emplace(value.status());
      }
      return p;
    }
    static Pending ready(Status error) {
      Pending p;
      p.value_.emplace(std::move(error));
      return p;
    }
    bool valid() const { return value_.has_value() || future_.valid() || encoded_future_.valid(); }
    void wait() const {
      if (future_.valid()) future_.wait();
      if (encoded_future_.valid()) encoded_future_.wait();
    }
    // The value; once (then !valid()). May rethrow what the future holds.
    StatusOr<Update> get() {
      if (value_) {
        StatusOr<Update> v = std::move(*value_);
        value_.reset();
        return v;
      }
      if (encoded_future_.valid()) {
        StatusOr<Encoded> e = encoded_future_.get();
        if (!e.is_ok()) return e.status();
        return Update{ParamSet(), std::move(e).value()};
      }
      StatusOr<ParamSet> v = future_.get();
      if (!v.is_ok()) return v.status();
      return Update{std::move(v).value(), nullptr};
    }

   private:
    std::optional<StatusOr<Update>> value_;
    std::future<StatusOr<ParamSet>> future_;
    std::future<StatusOr<Encoded>> encoded_future_;
  };
  using Fetch = std::function<Pending(size_t index)>;
  using Folded = std::function<void(size_t index)>;

  // `fold` from Strategy::begin(); `children` >= 0 (0: complete at once, and
  // finalize() fails like an empty Aggregation); `window` >= 1; `batch` in
  // [1, window]: see "Batches" above.
  OrderedFold(std::unique_ptr<Aggregation> fold, size_t children, size_t window, Fetch fetch,
              Folded folded = nullptr, size_t batch = 1);
  ~OrderedFold();
  OrderedFold(const OrderedFold&) = delete;
  OrderedFold& operator=(const OrderedFold&) = delete;

  // A value already there: for fetches that need no wait (a memory
  // connector's zero-copy view, tests).
  static Pending ready(StatusOr<ParamSet> value);
  static Pending ready(StatusOr<Encoded> value);
  static Pending ready(Status error);

  // Child `index` reported an update of weight `weight`; folds every child
  // that is now in turn.
  [[nodiscard]] Status arrive(size_t index, double weight);
  // Child `index` will not report (failed, late, dropped out); folds every
  // child that is now in turn.
  [[nodiscard]] Status skip(size_t index);

  size_t children() const { return slots_.size(); }
  size_t window() const { return window_; }
  // Canonical position of the next child to fold; children() when complete.
  size_t next() const { return next_; }
  size_t folded() const { return folded_; }
  size_t skipped() const { return skipped_; }
  // Children reported (arrived or skipped) so far.
  size_t reported() const { return reported_; }
  // Every child folded or skipped (and no error).
  bool complete() const { return status_.is_ok() && next_ == slots_.size(); }
  // Updates resolved (or being resolved) and not yet folded: <= window().
  size_t resolved() const { return resolved_; }
  // The most resolved() has been.
  size_t peak_resolved() const { return peak_resolved_; }
  // OK, or the error that failed the fold.
  const Status& status() const { return status_; }

  // The fold's result. FailedPrecondition unless complete(); otherwise what
  // Aggregation::finalize() returns (FailedPrecondition when every child was
  // skipped).
  StatusOr<Weighted> finalize();

 private:
  enum class Slot : uint8_t { kWaiting, kArrived, kSkipped, kDone };
  Status report(size_t index, bool arrived, double weight);
  void start_fetch(size_t index);
  Status advance();
  // Folds the arrived children [next_, end) and moves next_ past them.
  Status fold_run(size_t end);
  void done(size_t k);

  std::unique_ptr<Aggregation> fold_;
  size_t window_;
  size_t batch_;
  Fetch fetch_;
  Folded folded_cb_;
  std::vector<Slot> slots_;
  std::vector<double> weights_;
  std::vector<Pending> pending_;  // valid while child k is resolved and waiting
  size_t next_ = 0;
  size_t fetch_limit_ = 0;  // children below this index are fetched on arrival
  size_t folded_ = 0, skipped_ = 0, reported_ = 0;
  size_t resolved_ = 0, peak_resolved_ = 0;
  Status status_;
};

}  // namespace flight::aggregators
