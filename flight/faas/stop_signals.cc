#include "flight/faas/stop_signals.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "flight/base/check.h"

namespace flight::faas {

namespace {

int g_pipe[2] = {-1, -1};

void on_stop_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!write(g_pipe[1], &b, 1);
  errno = saved;
}

}  // namespace

StopSignals::StopSignals(std::function<void(int)> on_signal) {
  FLIGHT_CHECK(g_pipe[0] < 0, "only one StopSignals may exist at a time");
  FLIGHT_CHECK(pipe2(g_pipe, O_CLOEXEC) == 0, "pipe2 failed");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
  const int fd = g_pipe[0];
  thread_ = std::thread([fd, on_signal = std::move(on_signal)] {
    while (true) {
      unsigned char b = 0;
      const ssize_t n = read(fd, &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || b == 0) return;  // 0: the destructor asks us to stop
      on_signal(b);
    }
  });
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  const unsigned char stop = 0;
  (void)!write(g_pipe[1], &stop, 1);
  thread_.join();
  close(g_pipe[0]);
  close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

}  // namespace flight::faas
