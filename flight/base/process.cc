#include "flight/base/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "flight/base/check.h"
#include "flight/base/time.h"

extern char** environ;

namespace flight {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Builds the child's environment: the parent's, minus overridden and unset
// names, plus the overrides.
std::vector<std::string> child_environment(const ProcessOptions& o) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    std::string_view kv = *e;
    auto eq = kv.find('=');
    std::string name(kv.substr(0, eq));
    if (o.env.count(name)) continue;
    if (std::find(o.unset_env.begin(), o.unset_env.end(), name) != o.unset_env.end()) continue;
    out.emplace_back(kv);
  }
  for (const auto& [k, v] : o.env) out.push_back(k + "=" + v);
  return out;
}

// Closes both ends of the pipes made for a spawn that failed.
void close_fds(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace

Status ProcessOptions::validate() const {
  if (argv.empty() || argv[0].empty()) return invalid_argument("process: argv is empty");
  for (const Redirect* r : {&in, &out, &err}) {
    if (r->kind == Redirect::Kind::kFile && r->path.empty()) {
      return invalid_argument("process " + argv[0] + ": a file redirect needs a path");
    }
  }
  if (err.kind == Redirect::Kind::kPipe && out.kind != Redirect::Kind::kPipe) {
    return invalid_argument("process " + argv[0] + ": stderr can be piped only into stdout's pipe");
  }
  if (in.kind == Redirect::Kind::kFile && in.append) {
    return invalid_argument("process " + argv[0] + ": stdin cannot be appended to");
  }
  if (kill_grace.count() < 0) return invalid_argument("process: kill_grace < 0");
  return Status::ok();
}

StatusOr<std::unique_ptr<Process>> Process::spawn(ProcessOptions options) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  std::unique_ptr<Process> p(new Process(std::move(options)));
  const ProcessOptions& o = p->options_;

  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  // O_CLOEXEC: the child gets its end through dup2 only; the parent's ends
  // never leak into this or any other child.
  if (o.in.kind == Redirect::Kind::kPipe && ::pipe2(in_pipe, O_CLOEXEC) != 0) {
    return internal_error("process " + o.argv[0] + ": pipe: " + errno_text(errno));
  }
  if (o.out.kind == Redirect::Kind::kPipe && ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    close_fds({in_pipe[0], in_pipe[1]});
    return internal_error("process " + o.argv[0] + ": pipe: " + errno_text(errno));
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  auto redirect = [&](const Redirect& r, int target, int pipe_end) {
    switch (r.kind) {
      case Redirect::Kind::kInherit:
        break;
      case Redirect::Kind::kNull:
        posix_spawn_file_actions_addopen(&fa, target, "/dev/null",
                                         target == 0 ? O_RDONLY : O_WRONLY, 0);
        break;
      case Redirect::Kind::kFile:
        if (target == 0) {
          posix_spawn_file_actions_addopen(&fa, target, r.path.c_str(), O_RDONLY, 0);
        } else {
          posix_spawn_file_actions_addopen(&fa, target, r.path.c_str(),
                                           O_WRONLY | O_CREAT | (r.append ? O_APPEND : O_TRUNC),
                                           0644);
        }
        break;
      case Redirect::Kind::kPipe:
        posix_spawn_file_actions_adddup2(&fa, pipe_end, target);
        break;
    }
  };
  redirect(o.in, 0, in_pipe[0]);
  redirect(o.out, 1, out_pipe[1]);
  // One pipe per process: a piped stderr joins stdout's pipe (validate() checks).
  redirect(o.err, 2, out_pipe[1]);
  if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, o.cwd.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  // The child starts with no blocked signals and default dispositions, whatever
  // this process (a server with a signal-handling thread) has set up.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  if (o.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);

  std::vector<std::string> env = child_environment(o);
  std::vector<char*> envp, args;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv = o.argv;
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);

  // With no PATH in the override set, posix_spawnp searches the parent's PATH.
  int rc = ::posix_spawnp(&p->pid_, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close_fds({in_pipe[0], out_pipe[1]});
  if (rc != 0) {
    close_fds({in_pipe[1], out_pipe[0]});
    p->pid_ = -1;
    p->reaped_ = true;
    std::string where = o.cwd.empty() ? "" : " in " + o.cwd;
    return unavailable("cannot start " + o.argv[0] + where + ": " + errno_text(rc));
  }
  p->stdin_fd_ = in_pipe[1];
  p->stdout_fd_ = out_pipe[0];
  return p;
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) terminate();
  close_stdin();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

void Process::reap(int status) {
  reaped_ = true;
  status_ = status;
}

bool Process::running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) reap(status);
  return !reaped_;
}

void Process::signal(int sig) {
  if (reaped_ || pid_ <= 0) return;
  // The group's id is the leader's pid; the group may outlive the leader only
  // while unreaped grandchildren remain, which the caller's terminate() handles.
  ::kill(options_.new_process_group ? -pid_ : pid_, sig);
}

int Process::wait() {
  if (!reaped_) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reap(status);
  }
  return decode_status(status_);
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
  if (!poll_until([this] { return !running(); }, timeout)) return std::nullopt;
  return decode_status(status_);
}

int Process::terminate() {
  if (reaped_) return decode_status(status_);
  signal(SIGTERM);
  if (auto code = wait_for(options_.kill_grace)) {
    // The leader exited; stragglers of its group get no second chance.
    if (options_.new_process_group) ::kill(-pid_, SIGKILL);
    return *code;
  }
  ::kill(options_.new_process_group ? -pid_ : pid_, SIGKILL);
  return wait();
}

Status Process::write_line(std::string_view line) {
  if (stdin_fd_ < 0)
    return failed_precondition("process " + options_.argv[0] + ": stdin is not a pipe");
  std::string data(line);
  data.push_back('\n');
  size_t done = 0;
  while (done < data.size()) {
    // MSG_NOSIGNAL is for sockets; a closed pipe would raise SIGPIPE, which the
    // flight binary ignores — the EPIPE below is what we report.
    ssize_t n = ::write(stdin_fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unavailable("process " + options_.argv[0] + ": write to stdin: " + errno_text(errno));
    }
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

void Process::close_stdin() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

StatusOr<std::string> Process::read_line(std::chrono::milliseconds timeout) {
  if (stdout_fd_ < 0)
    return failed_precondition("process " + options_.argv[0] + ": stdout is not a pipe");
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    auto nl = stdout_buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, nl);
      stdout_buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      return deadline_exceeded("process " + options_.argv[0] + ": no line on stdout within " +
                               std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;  // timeout is handled at the top of the loop
    char buf[4096];
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return unavailable("process " + options_.argv[0] + " closed its stdout" +
                         (stdout_buffer_.empty() ? "" : " after: " + stdout_buffer_));
    }
    stdout_buffer_.append(buf, static_cast<size_t>(n));
  }
}

StatusOr<std::string> Process::wait_for_line(std::string_view marker,
                                             std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  if (options_.out.kind == Redirect::Kind::kPipe) {
    while (true) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      FLIGHT_ASSIGN_OR_RETURN(std::string line,
                              read_line(std::max(left, std::chrono::milliseconds(0))));
      if (line.find(marker) != std::string::npos) return line;
    }
  }
  if (options_.out.kind != Redirect::Kind::kFile) {
    return failed_precondition("process " + options_.argv[0] +
                               ": wait_for_line needs stdout in a pipe or a file");
  }
  std::string found;
  auto seen = [&] {
    std::string text = read_text_file(options_.out.path);
    // Only complete lines count: the server may be half-way through writing it.
    size_t pos = text.find(marker, file_scanned_);
    if (pos == std::string::npos) return false;
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) return false;
    size_t begin = text.rfind('\n', pos);
    begin = begin == std::string::npos ? 0 : begin + 1;
    found = text.substr(begin, end - begin);
    file_scanned_ = end + 1;
    return true;
  };
  bool exited = false;
  poll_until(
      [&] {
        if (seen()) return true;
        exited = !running();
        return exited;
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()));
  if (!found.empty() || seen()) return found;
  std::string tail;
  if (options_.err.kind == Redirect::Kind::kFile) tail = read_text_file(options_.err.path);
  if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
  if (exited) {
    return unavailable("process " + options_.argv[0] + " exited (status " +
                       std::to_string(decode_status(status_)) + ") before printing '" +
                       std::string(marker) + "'" + (tail.empty() ? "" : ": " + tail));
  }
  return deadline_exceeded("process " + options_.argv[0] + " did not print '" +
                           std::string(marker) + "' within " + std::to_string(timeout.count()) +
                           " ms" + (tail.empty() ? "" : ": " + tail));
}

StatusOr<int> free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unavailable(std::string("socket: ") + errno_text(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return unavailable("no free loopback port: " + errno_text(err));
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool loopback_port_accepts(int port) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool poll_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    if (pred()) return true;
    if (SteadyClock::now() >= deadline) return pred();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : p.string();
}

ProcessOptions self_command(std::vector<std::string> args, const std::string& log_path) {
  ProcessOptions o;
  o.argv = std::move(args);
  o.argv.insert(o.argv.begin(), self_executable());
  o.out = Redirect::file(log_path);
  o.err = Redirect::file(log_path + ".err");
  return o;
}

double peak_rss_mib(pid_t pid) {
  std::ifstream in(pid > 0 ? "/proc/" + std::to_string(pid) + "/status" : "/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream ls(line.substr(6));
      double kb = 0;
      ls >> kb;
      return kb / 1024.0;
    }
  }
  return -1;
}

TempDir::TempDir(std::string_view tag) {
  const char* base = ::getenv("TMPDIR");
  std::string tmpl =
      std::string(base && *base ? base : "/tmp") + "/" + std::string(tag) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  FLIGHT_CHECK(::mkdtemp(buf.data()) != nullptr,
               "mkdtemp(" + tmpl + ") failed: " + errno_text(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

}  // namespace flight
