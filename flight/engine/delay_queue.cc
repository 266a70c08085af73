#include "flight/engine/delay_queue.h"

namespace flight::engine {

DelayQueue::DelayQueue() : thread_([this] { loop(); }) {}

DelayQueue::~DelayQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DelayQueue::post(double delay_s, std::function<void()> fn) {
  const auto due = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(delay_s > 0 ? delay_s : 0));
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push(Item{due, seq_++, std::move(fn)});
  }
  cv_.notify_all();
}

void DelayQueue::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (items_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto due = items_.top().due;
    if (std::chrono::steady_clock::now() < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    auto fn = std::move(const_cast<Item&>(items_.top()).fn);
    items_.pop();
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace flight::engine
