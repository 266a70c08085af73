#include "flight/engine/fetch_pool.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "transport/codec.h"

namespace flight::engine {
namespace {

// Fetch jobs never wait on other tasks, so sharing the pool cannot deadlock.
class FetchPool {
 public:
  static FetchPool& instance() {
    static FetchPool* pool = new FetchPool(kFetchThreads);  // leaked: see below
    return *pool;
  }
  template <typename T>
  std::future<T> submit(std::function<T()> f) {
    auto job = std::make_shared<std::packaged_task<T()>>(std::move(f));
    auto fut = job->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back([job] { (*job)(); });
    }
    cv_.notify_one();
    return fut;
  }

 private:
  static constexpr int kFetchThreads = 2;
  explicit FetchPool(int n) {
    // Detached and never destroyed: at exit no fetch is in flight (every
    // fold waits for its own), and idle threads just stop with the process.
    for (int i = 0; i < n; ++i) std::thread([this] { work(); }).detach();
  }
  void work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

bool local(const transport::Ref& ref) {
  return ref.connector->is_object() && ref.connector->value("kind", std::string()) == "memory";
}

// A child's checked encoding, folded in place by a linear Aggregation.
class EncodedChild : public aggregators::EncodedUpdate {
 public:
  EncodedChild(transport::Bytes bytes, std::vector<aggregators::TensorMeta> layout)
      : bytes_(std::move(bytes)), layout_(std::move(layout)) {}
  const std::vector<aggregators::TensorMeta>& layout() const override { return layout_; }
  Status add_to(ParamSet& acc, double w, bool assign) const override {
    transport::AccumulateOptions o;
    o.verify_checksum = false;  // Store::get_bytes verified it
    o.assign = assign;
    return transport::accumulate_encoded(acc, bytes_, w, o);
  }
  bool folds_batches() const override { return true; }
  Status add_batch_to(ParamSet& acc, const std::vector<const aggregators::EncodedUpdate*>& batch,
                      const std::vector<double>& w, bool assign) const override {
    std::vector<const transport::Bytes*> bytes;
    bytes.reserve(batch.size());
    for (const auto* u : batch) {
      const auto* child = dynamic_cast<const EncodedChild*>(u);
      if (child == nullptr) return internal_error("a batch mixes encoded children with others");
      bytes.push_back(&child->bytes_);
    }
    transport::AccumulateOptions o;
    o.verify_checksum = false;
    o.assign = assign;
    return transport::accumulate_encoded(acc, bytes, w, o);
  }
  StatusOr<ParamSet> decode() const override { return transport::decode_trusted(bytes_); }

 private:
  transport::Bytes bytes_;
  std::vector<aggregators::TensorMeta> layout_;
};

StatusOr<aggregators::OrderedFold::Encoded> get_encoded(transport::Store& store,
                                                        const transport::Ref& ref) {
  FLIGHT_ASSIGN_OR_RETURN(transport::Bytes bytes, store.get_bytes(ref));
  FLIGHT_ASSIGN_OR_RETURN(auto entries,
                          transport::inspect_encoded(bytes, /*verify_checksum=*/false));
  std::vector<aggregators::TensorMeta> layout;
  layout.reserve(entries.size());
  for (auto& e : entries) layout.push_back({std::move(e.name), e.dtype, std::move(e.sizes)});
  return std::make_shared<const EncodedChild>(std::move(bytes), std::move(layout));
}

}  // namespace

aggregators::OrderedFold::Pending fetch_async(transport::Store& store, const transport::Ref& ref) {
  if (local(ref)) return aggregators::OrderedFold::Pending::ready(store.get(ref));
  return FetchPool::instance().submit<StatusOr<ParamSet>>([&store, ref] { return store.get(ref); });
}

aggregators::OrderedFold::Pending fetch_encoded_async(transport::Store& store,
                                                      const transport::Ref& ref) {
  if (local(ref)) return aggregators::OrderedFold::Pending::ready(get_encoded(store, ref));
  return FetchPool::instance().submit<StatusOr<aggregators::OrderedFold::Encoded>>(
      [&store, ref] { return get_encoded(store, ref); });
}

}  // namespace flight::engine
