// DelayQueue: runs callbacks after a delay on one background thread. Used to
// simulate slow devices (a topology node's `speed`): a worker's result is held
// back by train_time × (1/speed − 1) without occupying a compute thread, so
// the simulation stays as fast as the real work allows.
//
// Thread safety: post() may be called from any thread. The destructor runs
// nothing that is still pending (it drops it) and joins the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace flight::engine {

class DelayQueue {
 public:
  DelayQueue();
  ~DelayQueue();
  DelayQueue(const DelayQueue&) = delete;
  DelayQueue& operator=(const DelayQueue&) = delete;

  // Runs `fn` on the queue's thread once `delay_s` seconds have passed (at
  // once when delay_s <= 0 — still on the queue's thread).
  void post(double delay_s, std::function<void()> fn);

 private:
  struct Item {
    std::chrono::steady_clock::time_point due;
    uint64_t seq;  // FIFO among equal due times
    std::function<void()> fn;
    bool operator>(const Item& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> items_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace flight::engine
