#include "flight/faas/deadline_timer.h"

namespace flight::faas {

DeadlineTimer::DeadlineTimer(std::function<void()> thread_init)
    : thread_([this, init = std::move(thread_init)]() mutable { loop(std::move(init)); }) {}

DeadlineTimer::~DeadlineTimer() { stop(); }

void DeadlineTimer::schedule(Clock::time_point when, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  bool earliest = queue_.empty() || when < queue_.begin()->first;
  queue_.emplace(when, std::move(fn));
  if (earliest) cv_.notify_one();
}

void DeadlineTimer::schedule_after(double seconds, std::function<void()> fn) {
  schedule(Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)),
           std::move(fn));
}

void DeadlineTimer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void DeadlineTimer::loop(std::function<void()> thread_init) {
  if (thread_init) thread_init();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto when = queue_.begin()->first;
    if (Clock::now() < when) {
      cv_.wait_until(lock, when);
      continue;
    }
    auto fn = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    lock.unlock();
    fn();  // no lock held: the callback may schedule()
    lock.lock();
  }
}

}  // namespace flight::faas
