// A single-thread timer queue: run a callback at a steady-clock time. Used by
// the invokers to resolve futures at task deadlines.
//
// Thread safety: schedule()/stop() may be called from any thread, including
// from a callback (callbacks run on the timer thread, one at a time, without
// any internal lock held).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace flight::faas {

class DeadlineTimer {
 public:
  using Clock = std::chrono::steady_clock;
  // `thread_init` runs first on the timer thread (e.g. to mark it as an
  // invoker thread).
  explicit DeadlineTimer(std::function<void()> thread_init = nullptr);
  ~DeadlineTimer();  // stop()
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  void schedule(Clock::time_point when, std::function<void()> fn);
  void schedule_after(double seconds, std::function<void()> fn);
  // Drops pending callbacks and joins the thread. Idempotent.
  void stop();

 private:
  void loop(std::function<void()> thread_init);

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace flight::faas
