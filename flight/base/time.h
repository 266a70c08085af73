// Clocks and timers. Durations are seconds as double unless named otherwise.
#pragma once

#include <chrono>
#include <cstdint>

namespace flight {

using SteadyClock = std::chrono::steady_clock;

// Seconds since the Unix epoch (wall clock), for CSV timestamps.
double wall_seconds();

// Monotonic seconds since an arbitrary origin, for durations.
double mono_seconds();

class Stopwatch {
 public:
  Stopwatch() : start_(SteadyClock::now()) {}
  void reset() { start_ = SteadyClock::now(); }
  double seconds() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

 private:
  SteadyClock::time_point start_;
};

}  // namespace flight
