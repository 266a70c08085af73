// ChildFold: how an aggregating node — an aggregator's `aggregate` task or
// the coordinator in the sync driver — folds its children's updates: an
// OrderedFold (aggregators/ordered_fold.h) over ChildUpdates, resolving each
// child's Ref through a Store (fetch_pool.h) when it enters the window — as
// checked encoded bytes the fold dequantises in place when the Aggregation
// folds_encoded() (the weighted mean of every linear strategy), as a decoded
// ParamSet otherwise (robust strategies, secure aggregation's masked sum) — and
// evicting each owned update as soon as it is folded. A child that arrives
// ahead of the window is kept as its Ref (a few hundred bytes), so the node
// holds O(window x model), not O(children x model).
//
// The process-wide session table (fold_stream) keeps one ChildFold per
// aggregator between the tasks of a streaming aggregate (messages.h,
// FoldStream).
//
// Shared Refs: children that hand back one object they do not own (debug:
// dispatch returns the global model's Ref) resolve it once per ChildFold:
// the first such child fetches it, the others reuse that value (a pointer
// copy), so a 10,000-child fold makes one Store lookup, not 10,000.
//
// Ownership: owned updates that arrived but were never folded (a failed
// fold, an abandoned round) are evicted when the ChildFold is destroyed.
// Thread safety: a ChildFold is used by one thread at a time; fold_stream may
// be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "aggregators/ordered_fold.h"
#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/engine/messages.h"
#include "transport/store.h"

namespace flight::engine {

class ChildFold {
 public:
  // The longest run of children folded in one pass over the accumulator:
  // past 8, the accumulator's share of the traffic (2 / k model passes per
  // child against 1 for reading the child) stops mattering.
  static constexpr size_t kMaxFoldBatch = 8;

  // `total` children in canonical order; `window` >= 1 (ordered_fold.h).
  ChildFold(std::unique_ptr<aggregators::Aggregation> fold, transport::Store& store, size_t total,
            size_t window);
  ~ChildFold();
  ChildFold(const ChildFold&) = delete;
  ChildFold& operator=(const ChildFold&) = delete;

  // Children that arrived (each with its `index`); folds whatever is now in
  // turn. Errors name the child's node.
  [[nodiscard]] Status add(std::vector<ChildUpdate> children);
  // Position `index` will not report.
  [[nodiscard]] Status skip(size_t index);

  bool complete() const { return fold_->complete(); }
  size_t next() const { return fold_->next(); }
  size_t total() const { return fold_->children(); }
  size_t folded() const { return fold_->folded(); }
  size_t peak_resolved() const { return fold_->peak_resolved(); }
  // Worker updates behind the children that arrived (sum of their counts).
  int64_t count() const { return count_; }

  StatusOr<aggregators::Weighted> finalize() { return fold_->finalize(); }

 private:
  Status add_one(ChildUpdate child);
  Status named(Status st) const;
  // Child k's update pending: its own fetch, or the shared value (above).
  aggregators::OrderedFold::Pending fetch(size_t k);

  transport::Store& store_;
  std::vector<std::optional<ChildUpdate>> children_;  // arrived, not yet folded
  int64_t count_ = 0;
  uint64_t largest_ = 0;   // largest child update (encoded bytes)
  bool in_place_ = false;  // linear fold: children as checked encodings
  // The last non-owned Ref resolved, and its value.
  std::optional<transport::Ref> shared_ref_;
  aggregators::OrderedFold::Update shared_;
  // Destroyed first (declared last): waits for fetches reading children_.
  std::unique_ptr<aggregators::OrderedFold> fold_;
};

// One task of a streaming aggregate: adds args.children and args.stream's
// skips to the aggregator's session (created by the first task of a session
// id, replacing an older session of the same job and node), and, when the
// last position has been folded, puts the partial aggregate with `put` (args.put's scope, the run's
// encoding) and answers done: true. Otherwise answers done: false with the positions folded so far.
// A failed task drops its session.
// `finish`, when set, transforms the partial aggregate before it is put
// (error_feedback.h: top-k'd partials).
using PartialHook = std::function<Status(aggregators::Weighted*)>;
StatusOr<AggregateResult> fold_stream(const AggregateArgs& args,
                                      const aggregators::Strategy& strategy,
                                      transport::Store& store, const transport::PutOptions& put,
                                      const PartialHook& finish = nullptr);

}  // namespace flight::engine
