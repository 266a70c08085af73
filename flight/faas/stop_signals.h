// Runs a callback on SIGINT / SIGTERM, from a normal thread, so the callback
// may take locks. The signal handler only writes the signal number to a pipe
// (async-signal-safe) and a dedicated thread reads it and calls back. A
// handler — not a blocked mask plus sigwait — because libraries start threads
// of their own before main (OpenBLAS's pool, for one) whose masks we do not
// control: a blocked-mask scheme lets such a thread take the signal and die
// with the default action.
//
// One instance at a time per process.
#pragma once

#include <csignal>
#include <functional>
#include <thread>

namespace flight::faas {

class StopSignals {
 public:
  explicit StopSignals(std::function<void(int)> on_signal);
  ~StopSignals();  // stops the reading thread and restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  std::thread thread_;
};

}  // namespace flight::faas
