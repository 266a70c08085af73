#include "flight/engine/fetch_pool.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace flight::engine {
namespace {

// Fetch jobs never wait on other tasks, so sharing the pool cannot deadlock.
class FetchPool {
 public:
  static FetchPool& instance() {
    static FetchPool* pool = new FetchPool(kFetchThreads);  // leaked: see below
    return *pool;
  }
  std::future<StatusOr<ParamSet>> submit(transport::Store* store, transport::Ref ref) {
    std::packaged_task<StatusOr<ParamSet>()> job(
        [store, ref = std::move(ref)] { return store->get(ref); });
    auto fut = job.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
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
      std::packaged_task<StatusOr<ParamSet>()> job;
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
  std::deque<std::packaged_task<StatusOr<ParamSet>()>> queue_;
};

bool local(const transport::Ref& ref) {
  return ref.connector->is_object() && ref.connector->value("kind", std::string()) == "memory";
}

}  // namespace

aggregators::OrderedFold::Pending fetch_async(transport::Store& store, const transport::Ref& ref) {
  if (local(ref)) return aggregators::OrderedFold::Pending::ready(store.get(ref));
  return FetchPool::instance().submit(&store, ref);
}

}  // namespace flight::engine
