// Runs a callback on SIGINT / SIGTERM, from a normal thread (sigwait), so the
// callback may take locks. Construct it on the main thread BEFORE starting any
// other thread: the signals are blocked in the constructing thread and every
// thread it starts afterwards inherit that mask.
#pragma once

#include <csignal>
#include <functional>
#include <thread>

namespace flight::faas {

class StopSignals {
 public:
  explicit StopSignals(std::function<void(int)> on_signal);
  ~StopSignals();  // stops the waiting thread; the mask stays
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  std::thread thread_;
};

}  // namespace flight::faas
