// Child processes (POSIX only): the one launcher every layer above base uses —
// benches, the `processes` deploy launcher, tests/support. Also the small
// helpers that go with running a server as a child: a free loopback port, "does
// this port accept", polling another process's readiness, this executable's path.
//
// Ownership: a Process owns its child. Destroying a Process that is still
// running terminates it (SIGTERM, then SIGKILL after the grace period) and
// reaps it, so no child outlives its owner by accident. With
// `new_process_group` the signals go to the child's whole group (a launcher
// that starts grandchildren stops them too).
//
// Thread safety: one thread at a time per Process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flight/base/status.h"

namespace flight {

// Where one of the child's standard streams goes.
struct Redirect {
  enum class Kind { kInherit, kNull, kFile, kPipe };
  Kind kind = Kind::kInherit;
  std::string path;  // kFile: created or truncated; appended to with `append`
  bool append = false;

  static Redirect inherit() { return {}; }
  static Redirect null() { return {Kind::kNull, "", false}; }
  static Redirect file(std::string path, bool append = false) {
    return {Kind::kFile, std::move(path), append};
  }
  static Redirect pipe() { return {Kind::kPipe, "", false}; }
};

struct ProcessOptions {
  // argv[0] is looked up in PATH unless it contains a '/'. Required.
  std::vector<std::string> argv;
  // Added to the parent's environment (a name given here replaces the parent's).
  std::map<std::string, std::string> env;
  // Names removed from the inherited environment.
  std::vector<std::string> unset_env;
  // Working directory of the child; empty = the parent's.
  std::string cwd;
  // The child leads a new process group; signal()/terminate() reach the group.
  bool new_process_group = false;
  Redirect in = Redirect::inherit();   // kPipe: write_line()/close_stdin()
  Redirect out = Redirect::inherit();  // kPipe: read_line()
  Redirect err = Redirect::inherit();  // kPipe: merged into stdout's pipe
  // How long terminate() (and the destructor) waits after SIGTERM before SIGKILL.
  std::chrono::milliseconds kill_grace{5000};

  Status validate() const;
};

class Process {
 public:
  // Starts the child. Errors: invalid options, or the executable cannot be run
  // (not found, not executable, cwd missing) — reported here, not as exit 127.
  static StatusOr<std::unique_ptr<Process>> spawn(ProcessOptions options);

  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const ProcessOptions& options() const { return options_; }

  // False once the child has exited (and has been reaped).
  bool running();
  // Sends `sig` to the child (to its group with new_process_group). No-op once reaped.
  void signal(int sig);
  // Blocks until the child exits. Returns the exit code, or 128+N when signal N killed it.
  int wait();
  // As wait(), but gives up after `timeout` (the child keeps running).
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // SIGTERM, up to kill_grace for the child to exit, then SIGKILL; returns as wait().
  int terminate();

  // Pipes (only when the stream was Redirect::pipe()).
  Status write_line(std::string_view line);
  void close_stdin();
  // One line of the child's stdout without its newline; deadline_exceeded on
  // timeout, unavailable when the child closed its stdout.
  StatusOr<std::string> read_line(std::chrono::milliseconds timeout);

  // Waits until the child's stdout (a pipe or a kFile redirect) shows a complete
  // line containing `marker` and returns that line. Fails early when the child
  // exits first. This is how a launcher learns a server's "listening on ..." line.
  StatusOr<std::string> wait_for_line(std::string_view marker, std::chrono::milliseconds timeout);

 private:
  explicit Process(ProcessOptions options) : options_(std::move(options)) {}
  void reap(int status);

  ProcessOptions options_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string stdout_buffer_;  // bytes read from the stdout pipe, not yet returned
  size_t file_scanned_ = 0;    // wait_for_line on a file: bytes already looked at
};

// A loopback TCP port that was free a moment ago (bind to port 0, read it back).
StatusOr<int> free_loopback_port();

// A connected TCP socket to 127.0.0.1:port (close-on-exec, TCP_NODELAY) the
// caller closes, or -1.
int connect_loopback(int port);

// True when something accepts TCP connections on 127.0.0.1:port.
bool loopback_port_accepts(int port);

// Polls `pred` with a growing pause (1 ms .. 50 ms) until it is true or
// `timeout` passes; returns its last value. For readiness of another process,
// where no notification exists — never as synchronisation inside one process.
bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// Absolute path of the running executable (/proc/self/exe), to start copies of
// this binary in another mode ("flight serve", "flight endpoint", ...).
std::string self_executable();

// Options that run this executable again with `args` (argv[0] is
// self_executable()), stdout to `log_path` and stderr to `log_path` + ".err":
// how benches and launchers start `flight serve` / `flight endpoint` children.
ProcessOptions self_command(std::vector<std::string> args, const std::string& log_path);

// Peak resident set (VmHWM) of a process in MiB (pid 0 = this one); -1 if unreadable.
double peak_rss_mib(pid_t pid = 0);

// A directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  explicit TempDir(std::string_view tag = "flight");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Whole contents of a file ("" when missing).
std::string read_text_file(const std::string& path);

}  // namespace flight
