// The one child-process launcher and the redis-server starter (flight/base),
// against real processes: /bin/sh, cat, sleep and a real redis-server.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "flight/base/process.h"
#include "flight/base/redis_server.h"

namespace flight {
namespace {

using namespace std::chrono_literals;

// Gone: no such pid, or a zombie nobody has reaped yet (a dead grandchild
// whose new parent has not collected it).
bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::string stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

std::unique_ptr<Process> must_spawn(ProcessOptions o) {
  auto p = Process::spawn(std::move(o));
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  return p.is_ok() ? std::move(*p) : nullptr;
}

TEST(Process, ExitCodeAndFileRedirects) {
  TempDir dir("process-test");
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"};
  o.out = Redirect::file(dir.file("out"));
  o.err = Redirect::file(dir.file("err"));
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wait(), 3);
  EXPECT_FALSE(p->running());
  EXPECT_EQ(read_text_file(dir.file("out")), "out\n");
  EXPECT_EQ(read_text_file(dir.file("err")), "err\n");
}

TEST(Process, EnvCwdAndUnset) {
  TempDir dir("process-test");
  setenv("FLIGHT_PROCESS_TEST_UNSET", "present", 1);
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "echo \"$FLIGHT_X:$(pwd):${FLIGHT_PROCESS_TEST_UNSET:-gone}\""};
  o.env = {{"FLIGHT_X", "42"}};
  o.unset_env = {"FLIGHT_PROCESS_TEST_UNSET"};
  o.cwd = dir.path();
  o.out = Redirect::pipe();
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  auto line = p->read_line(10s);
  ASSERT_TRUE(line.is_ok()) << line.status().to_string();
  EXPECT_EQ(*line, "42:" + dir.path() + ":gone");
  EXPECT_EQ(p->wait(), 0);
}

TEST(Process, PipesBothWays) {
  ProcessOptions o;
  o.argv = {"cat"};
  o.in = Redirect::pipe();
  o.out = Redirect::pipe();
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->write_line("hello").is_ok());
  ASSERT_TRUE(p->write_line("world").is_ok());
  EXPECT_EQ(*p->read_line(10s), "hello");
  EXPECT_EQ(*p->read_line(10s), "world");
  p->close_stdin();
  auto eof = p->read_line(10s);
  EXPECT_EQ(eof.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(p->wait(), 0);
}

TEST(Process, ReadLineTimesOut) {
  ProcessOptions o;
  o.argv = {"sleep", "30"};
  o.out = Redirect::pipe();
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  auto line = p->read_line(50ms);
  EXPECT_EQ(line.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(p->wait_for(10ms).has_value());
  EXPECT_EQ(p->terminate(), 128 + SIGTERM);
}

TEST(Process, WaitForLineInAFileAndEarlyExit) {
  TempDir dir("process-test");
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "echo starting; echo 'listening on http://127.0.0.1:1'; sleep 30"};
  o.out = Redirect::file(dir.file("out"));
  o.new_process_group = true;  // terminate() must stop `sleep` too
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  auto line = p->wait_for_line("listening on ", 20s);
  ASSERT_TRUE(line.is_ok()) << line.status().to_string();
  EXPECT_EQ(*line, "listening on http://127.0.0.1:1");
  p->terminate();

  o.argv = {"/bin/sh", "-c", "echo 'bad config' >&2; exit 2"};
  o.err = Redirect::file(dir.file("err"));
  auto q = must_spawn(o);
  ASSERT_TRUE(q);
  auto missing = q->wait_for_line("listening on ", 20s);
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(missing.status().message().find("bad config"), std::string::npos)
      << missing.status().to_string();
}

TEST(Process, MissingExecutableIsAStatus) {
  ProcessOptions o;
  o.argv = {"flight-no-such-program-xyz"};
  auto p = Process::spawn(o);
  EXPECT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("flight-no-such-program-xyz"), std::string::npos);
  EXPECT_FALSE(Process::spawn(ProcessOptions{}).is_ok());
  ProcessOptions bad;
  bad.argv = {"true"};
  bad.err = Redirect::pipe();  // stderr may only join a piped stdout
  EXPECT_EQ(Process::spawn(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(Process, TerminateReachesTheWholeGroup) {
  TempDir dir("process-test");
  ProcessOptions o;
  // The shell starts a grandchild and reports its pid; SIGTERM on the group
  // must stop both.
  o.argv = {"/bin/sh", "-c", "sleep 60 & echo $!; wait"};
  o.new_process_group = true;
  o.out = Redirect::pipe();
  auto p = must_spawn(o);
  ASSERT_TRUE(p);
  auto line = p->read_line(10s);
  ASSERT_TRUE(line.is_ok()) << line.status().to_string();
  pid_t grandchild = std::stoi(*line);
  EXPECT_EQ(::getpgid(p->pid()), p->pid());
  p->terminate();
  EXPECT_TRUE(poll_until([&] { return gone(grandchild); }, 10s));
}

TEST(Process, DestructorStopsARunningChild) {
  pid_t pid = -1;
  {
    ProcessOptions o;
    o.argv = {"sleep", "60"};
    o.kill_grace = 100ms;
    auto p = must_spawn(o);
    ASSERT_TRUE(p);
    pid = p->pid();
    EXPECT_TRUE(p->running());
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped: the pid no longer exists
}

TEST(Process, FreePortAndSelf) {
  auto port = free_loopback_port();
  ASSERT_TRUE(port.is_ok());
  EXPECT_GT(*port, 0);
  EXPECT_FALSE(loopback_port_accepts(*port));
  EXPECT_NE(self_executable().find("process_test"), std::string::npos) << self_executable();
  EXPECT_GT(peak_rss_mib(), 0);
}

TEST(RedisServer, StartsPingsAndRestartsKeepingData) {
  RedisServerOptions o;
  o.persistent = true;
  auto server = RedisServer::start(o);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  auto& s = **server;
  EXPECT_TRUE(redis_ping(s.port()));
  EXPECT_TRUE(loopback_port_accepts(s.port()));
  EXPECT_EQ(s.url(), "redis://127.0.0.1:" + std::to_string(s.port()));
  s.stop();
  EXPECT_FALSE(redis_ping(s.port()));
  ASSERT_TRUE(s.restart().is_ok());
  EXPECT_TRUE(redis_ping(s.port()));
}

TEST(RedisServer, BadExecutableOrArgsAreStatuses) {
  RedisServerOptions o;
  o.executable = "flight-no-such-redis-server";
  EXPECT_EQ(RedisServer::start(o).status().code(), StatusCode::kUnavailable);
  RedisServerOptions bad_args;
  bad_args.extra_args = {"--no-such-redis-option", "1"};
  auto s = RedisServer::start(bad_args);
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  RedisServerOptions bad_port;
  bad_port.port = 70000;
  EXPECT_EQ(RedisServer::start(bad_port).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flight
