#include "flight/engine/child_fold.h"

#include <malloc.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "flight/engine/fetch_pool.h"
#include "flight/engine/job.h"
#include "flight/engine/secagg_worker.h"
#include "flight/engine/task_process.h"
#include "flight/params/param_ops.h"

namespace flight::engine {

namespace {

// A decoded update offered to a linear fold as an EncodedUpdate: the shared
// value of ChildFold::fetch, whose layout is computed once for all the
// children that share it, and whose tensors are folded with the kernels of
// Aggregation::accumulate (the bits of the decoded path).
class DecodedChild final : public aggregators::EncodedUpdate {
 public:
  explicit DecodedChild(ParamSet params) : params_(std::move(params)) {
    layout_.reserve(params_.size());
    for (const auto& e : params_) {
      layout_.push_back({e.name, e.tensor.scalar_type(),
                         std::vector<int64_t>(e.tensor.sizes().begin(), e.tensor.sizes().end())});
    }
  }
  const std::vector<aggregators::TensorMeta>& layout() const override { return layout_; }
  Status add_to(ParamSet& acc, double w, bool assign) const override {
    if (acc.size() != params_.size()) {
      return internal_error("accumulator has " + std::to_string(acc.size()) + " tensors, update " +
                            std::to_string(params_.size()));
    }
    for (size_t i = 0; i < acc.size(); ++i) {
      if (assign) {
        assign_scaled_(acc[i].tensor, params_[i].tensor, w);
      } else {
        add_scaled_(acc[i].tensor, params_[i].tensor, w);
      }
    }
    return Status::ok();
  }
  StatusOr<ParamSet> decode() const override { return params_; }

 private:
  ParamSet params_;
  std::vector<aggregators::TensorMeta> layout_;
};

}  // namespace

ChildFold::ChildFold(std::unique_ptr<aggregators::Aggregation> fold, transport::Store& store,
                     size_t total, size_t window)
    : store_(store), children_(total), in_place_(fold->folds_encoded()) {
  // In-place folds take runs of children in one pass over the accumulator
  // (ordered_fold.h, "Batches"): at most window / 2 wait for their run, so the
  // sync driver's credits (a window's worth, refilled at a quarter) never all
  // sit in a waiting run.
  const size_t batch = in_place_ ? std::clamp<size_t>(window / 2, 1, kMaxFoldBatch) : 1;
  fold_ = std::make_unique<aggregators::OrderedFold>(
      std::move(fold), total, window, [this](size_t k) { return fetch(k); },
      [this](size_t k) {
        // The consumer owns a child's update: evicting it once folded keeps a
        // round's footprint at O(window), not O(workers).
        if (children_[k]->owned) evict_consumed(store_, children_[k]->update);
        children_[k].reset();
      },
      batch);
}

// A linear fold reads each child's checked encoding in place (compressed
// payloads are dequantised inside the fold: no decoded float copy per child);
// robust and masked folds get decoded ParamSets.
aggregators::OrderedFold::Pending ChildFold::fetch(size_t k) {
  using Pending = aggregators::OrderedFold::Pending;
  const transport::Ref& ref = children_[k]->update;
  if (children_[k]->owned) {
    return in_place_ ? fetch_encoded_async(store_, ref) : fetch_async(store_, ref);
  }
  auto shared = [this] {
    return shared_.encoded ? Pending::ready(shared_.encoded) : Pending::ready(shared_.params);
  };
  if (shared_ref_ && *shared_ref_ == ref) return shared();
  // First child with this Ref: resolved now through the Store's cache (a
  // shared object is fetched once per fold: little latency to overlap), and
  // kept, decoded, for the others.
  StatusOr<aggregators::OrderedFold::Update> got = fetch_async(store_, ref).get();
  if (!got.is_ok()) return Pending::ready(got.status());
  shared_ = aggregators::OrderedFold::Update{};
  if (in_place_) {
    shared_.encoded = std::make_shared<const DecodedChild>(std::move(got->params));
  } else {
    shared_.params = std::move(got->params);
  }
  shared_ref_ = ref;
  return shared();
}

ChildFold::~ChildFold() {
  fold_.reset();  // waits for fetches in flight
  for (auto& c : children_) {
    if (c && c->owned) evict_consumed(store_, c->update);
  }
  // glibc raises its mmap threshold to the largest tensor freed (up to 32 MiB),
  // so a fold's decoded children end up as free chunks in the arenas of the
  // threads that fetched them, and a 3-tier round's RSS grew by ~30 MB per
  // aggregator. Handing them back at the end of each fold keeps it at the
  // flat round's (128 x 10M MLP training round: 1684 -> 1275 MB). Small
  // models skip it: their chunks stay below the threshold's floor and the
  // trim's walk over the arenas would cost more than it frees.
  constexpr uint64_t kTrimFrom = 4ull << 20;
  if (largest_ >= kTrimFrom) malloc_trim(0);
}

// OrderedFold fails at its frontier, next(), whose update is still held.
Status ChildFold::named(Status st) const {
  if (st.is_ok() || fold_->status().is_ok()) return st;
  const size_t k = fold_->next();
  if (k < children_.size() && children_[k]) return st.with_context("child " + children_[k]->node);
  return st;
}

Status ChildFold::add(std::vector<ChildUpdate> children) {
  // Last position first: the later children enter the window (their fetches
  // start) before the fold waits on the first one.
  std::sort(children.begin(), children.end(),
            [](const ChildUpdate& a, const ChildUpdate& b) { return a.index > b.index; });
  Status first = Status::ok();
  for (auto& c : children) {
    if (first.is_ok()) {
      first = add_one(std::move(c));
    } else if (c.owned) {
      evict_consumed(store_, c.update);  // never folded: the fold failed before it
    }
  }
  return first;
}

Status ChildFold::add_one(ChildUpdate child) {
  if (child.index < 0 || static_cast<size_t>(child.index) >= children_.size()) {
    return invalid_argument("child " + child.node + ": position " + std::to_string(child.index) +
                            " outside [0, " + std::to_string(children_.size()) + ")");
  }
  const auto k = static_cast<size_t>(child.index);
  if (children_[k] || k < fold_->next()) {
    return invalid_argument("child " + child.node + " (position " + std::to_string(k) +
                            ") reported twice");
  }
  const double weight = child.weight;
  count_ += child.count;
  largest_ = std::max(largest_, child.update.size);
  children_[k] = std::move(child);
  return named(fold_->arrive(k, weight));
}

Status ChildFold::skip(size_t index) { return named(fold_->skip(index)); }

namespace {

// Streaming aggregates of this process: one partial fold per (job, node).
struct Session {
  std::mutex mu;
  std::string id;
  std::unique_ptr<ChildFold> fold;
};

class Sessions {
 public:
  static Sessions& instance() {
    static Sessions* s = new Sessions();  // leaked: tasks may run during exit
    return *s;
  }
  // The session `id` of `key`, created (replacing an older one) if needed.
  std::shared_ptr<Session> open(const std::string& key, const std::string& id,
                                const std::function<std::unique_ptr<ChildFold>()>& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = table_[key];
    if (!slot || slot->id != id) {
      // A new round (or attempt) for this node: an older session was
      // abandoned (its round failed elsewhere); its fold evicts what it held.
      slot = std::make_shared<Session>();
      slot->id = id;
      slot->fold = make();
    }
    return slot;
  }
  void close(const std::string& key, const std::shared_ptr<Session>& s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(key);
    if (it != table_.end() && it->second == s) table_.erase(it);
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> table_;
};

}  // namespace

StatusOr<AggregateResult> fold_stream(const AggregateArgs& args,
                                      const aggregators::Strategy& strategy,
                                      transport::Store& store, const transport::PutOptions& put,
                                      const PartialHook& finish) {
  FLIGHT_CHECK(args.stream.has_value(), "fold_stream without a stream");
  const FoldStream& st = *args.stream;
  const std::string key =
      (args.job.id.empty() ? job_id(args.job.job) : args.job.id) + '\n' + args.node;
  auto session = Sessions::instance().open(key, st.session, [&] {
    return std::make_unique<ChildFold>(args.masked ? masked_sum() : strategy.begin(), store,
                                       static_cast<size_t>(st.total),
                                       static_cast<size_t>(st.window));
  });
  std::lock_guard<std::mutex> lock(session->mu);
  ChildFold& fold = *session->fold;
  auto fail = [&](Status s) {
    Sessions::instance().close(key, session);
    return s.with_context("aggregator " + args.node);
  };
  if (fold.total() != static_cast<size_t>(st.total)) {
    return fail(invalid_argument("session " + st.session + " has " + std::to_string(fold.total()) +
                                 " children, this task says " + std::to_string(st.total)));
  }
  AggregateResult out;
  for (const auto& c : args.children) {
    if (c.base) return fail(invalid_argument("a streaming aggregate does not fold bases"));
    out.bytes_fetched += c.update.size;
  }
  Status added = fold.add(args.children);
  if (!added.is_ok()) return fail(added);
  for (int64_t k : st.skipped) {
    Status s = fold.skip(static_cast<size_t>(k));
    if (!s.is_ok()) return fail(s);
  }
  out.folded = static_cast<int64_t>(fold.next());
  if (!fold.complete()) {
    out.done = false;
    return out;
  }
  auto result = fold.finalize();
  if (!result.is_ok()) return fail(result.status());
  if (finish) {
    Status st = finish(&*result);
    if (!st.is_ok()) return fail(st);
  }
  auto ref = store.put(result->params, put);
  if (!ref.is_ok()) return fail(ref.status());
  out.update = std::move(ref).value();
  out.owned = true;
  out.weight = result->weight;
  out.count = fold.count();
  out.bytes_put = out.update.size;
  Sessions::instance().close(key, session);
  return out;
}

}  // namespace flight::engine
