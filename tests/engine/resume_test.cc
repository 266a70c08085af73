// `flight run --resume` with the real binary as a child process: a killed
// run (SIGKILL right after a chosen checkpoint, or from outside once a
// checkpoint file exists) continues with the settings it was started with and
// ends with the model.pt bytes of an uninterrupted run, sync and async
// (virtual clock); a resume whose CONFIG or --set changes settings is refused
// naming every changed key unless --allow-changes; a run directory's
// config.yaml runs from any working directory.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "flight/base/process.h"

namespace flight {
namespace {

namespace fs = std::filesystem;
using std::chrono::minutes;

constexpr int kKilled = 128 + SIGKILL;

// Four workers under two aggregators (the topology file sits next to the
// config, referred to by a relative path).
const char* kTopology = R"(coordinator: {kind: coordinator, children: [agg-a, agg-b]}
agg-a: {kind: aggregator, children: [w1, w2]}
agg-b: {kind: aggregator, children: [w3, w4]}
w1: {kind: worker}
w2: {kind: worker, speed: 0.5}
w3: {kind: worker}
w4: {kind: worker, speed: 0.25}
)";

const char* kSync = R"(name: resume-sync
seed: 5
topology: topo.yaml
model: {name: mlp}
data: {dataset: fashion_mnist, partition: {method: dirichlet, alpha: 1.0}}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 5}
strategy: {name: fedavg, participation: 0.75}
rounds: 3
threads: 2
)";

const char* kAsync = R"(name: resume-async
seed: 9
topology: topo.yaml
model: {name: mlp}
data: {dataset: fashion_mnist, partition: {method: iid}}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 5}
strategy: {name: fedbuff, params: {buffer_size: 3}}
mode: async
async: {max_updates: 40, eval_every: 4, aggregator_buffer: 2}
clock: virtual
heterogeneity: {speed_sigma: 0.3}
threads: 2
)";

class ResumeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.file("cfg"));
    write("cfg/topo.yaml", kTopology);
    write("cfg/sync.yaml", kSync);
    write("cfg/async.yaml", kAsync);
  }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.file(name)) << text;
  }

  ProcessOptions command(std::vector<std::string> args, const std::string& log,
                         const std::string& cwd) {
    ProcessOptions po;
    po.argv = {FLIGHT_BINARY, "run"};
    po.argv.insert(po.argv.end(), args.begin(), args.end());
    po.argv.push_back("-q");
    po.cwd = cwd.empty() ? dir_.path() : cwd;
    po.out = Redirect::file(dir_.file(log + ".log"));
    po.err = Redirect::file(dir_.file(log + ".log"), /*append=*/true);
    return po;
  }

  // `flight run ARGS -q` in the temp dir (or `cwd`); its exit code (128+N
  // when signal N killed it). Output in LOG.log.
  int flight_run(std::vector<std::string> args, const std::string& log,
                 const std::string& cwd = "") {
    auto p = Process::spawn(command(std::move(args), log, cwd));
    EXPECT_TRUE(p.is_ok()) << p.status();
    if (!p.is_ok()) return -1;
    auto rc = (*p)->wait_for(minutes(10));
    EXPECT_TRUE(rc.has_value()) << "flight run did not finish: " << this->log(log);
    return rc.value_or(-1);
  }

  std::string log(const std::string& name) { return read_text_file(dir_.file(name + ".log")); }
  std::string file(const std::string& name) { return read_text_file(dir_.file(name)); }
  size_t csv_rows(const std::string& name) {
    const std::string text = file(name);
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) - 1;
  }

  void expect_same_model(const std::string& a, const std::string& b) {
    const std::string want = file(a + "/model.pt");
    const std::string got = file(b + "/model.pt");
    ASSERT_GT(want.size(), 100000u) << a << "/model.pt";
    EXPECT_TRUE(got == want) << b << "/model.pt differs from " << a << "/model.pt";
  }

  TempDir dir_{"resume-test"};
};

TEST_F(ResumeCliTest, ResumeAloneContinuesTheKilledRunWithItsOwnSettings) {
  // Started with --set rounds=2 (the file says 3), killed after round 1.
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--set", "rounds=2", "-o", "killed",
                        "--crash-after-checkpoint", "1"},
                       "killed"),
            kKilled)
      << log("killed");
  EXPECT_EQ(csv_rows("killed/rounds.csv"), 1u);
  EXPECT_FALSE(fs::exists(dir_.file("killed/model.pt")));

  ASSERT_EQ(flight_run({"--resume", "killed"}, "resumed"), 0) << log("resumed");
  EXPECT_EQ(csv_rows("killed/rounds.csv"), 2u) << "resume ran the config file's 3 rounds";

  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--set", "rounds=2", "-o", "whole"}, "whole"), 0)
      << log("whole");
  expect_same_model("whole", "killed");
}

TEST_F(ResumeCliTest, ChangedSettingsAreRefusedNamingEveryKeyUnlessAllowed) {
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--set", "rounds=2", "-o", "run",
                        "--crash-after-checkpoint", "1"},
                       "killed"),
            kKilled)
      << log("killed");

  // The config file without the override: 3 rounds, not the run's 2.
  EXPECT_NE(flight_run({"cfg/sync.yaml", "--resume", "run"}, "config-differs"), 0);
  EXPECT_NE(log("config-differs").find("rounds: 2 -> 3"), std::string::npos)
      << log("config-differs");
  EXPECT_NE(log("config-differs").find("--allow-changes"), std::string::npos)
      << log("config-differs");
  // --set on top of the run's own config: every changed key is named.
  EXPECT_NE(
      flight_run({"--resume", "run", "--set", "train.lr=0.1", "--set", "seed=6"}, "set-differs"),
      0);
  EXPECT_NE(log("set-differs").find("train.lr: 0.05 -> 0.1"), std::string::npos)
      << log("set-differs");
  EXPECT_NE(log("set-differs").find("seed: 5 -> 6"), std::string::npos) << log("set-differs");
  EXPECT_NE(log("set-differs").find("2 settings"), std::string::npos) << log("set-differs");
  // Refusals leave the run as it was: one round, resumable.
  EXPECT_EQ(csv_rows("run/rounds.csv"), 1u);
  EXPECT_NE(file("run/config.yaml").find("rounds: 2"), std::string::npos);

  // The same config as the run's is no change.
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--set", "rounds=2", "--resume", "run", "--set",
                        "output.dir=elsewhere", "--crash-after-checkpoint", "1"},
                       "same"),
            kKilled)
      << log("same");
  EXPECT_EQ(csv_rows("run/rounds.csv"), 2u);
  // Asked for explicitly: the run continues with the new settings.
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--resume", "run", "--allow-changes"}, "allowed"), 0)
      << log("allowed");
  EXPECT_EQ(csv_rows("run/rounds.csv"), 3u);
  EXPECT_NE(file("run/config.yaml").find("rounds: 3"), std::string::npos);
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "-o", "whole"}, "whole"), 0) << log("whole");
  expect_same_model("whole", "run");

  EXPECT_NE(flight_run({"--allow-changes", "cfg/sync.yaml"}, "no-resume"), 0);
  EXPECT_NE(log("no-resume").find("needs --resume"), std::string::npos) << log("no-resume");
  EXPECT_NE(flight_run({"--resume", "nowhere"}, "no-run"), 0);
  EXPECT_NE(log("no-run").find("no config.yaml"), std::string::npos) << log("no-run");
}

TEST_F(ResumeCliTest, RunDirectoryConfigRunsFromAnyWorkingDirectory) {
  ASSERT_EQ(flight_run({"cfg/sync.yaml", "--set", "rounds=1", "-o", "runs/first"}, "first"), 0)
      << log("first");
  // From another directory, by a relative path: the topology path in
  // config.yaml must not depend on where the original config was.
  fs::create_directories(dir_.file("elsewhere/deeper"));
  ASSERT_EQ(flight_run({"../../runs/first/config.yaml", "-o", "../../again"}, "again",
                       dir_.file("elsewhere/deeper")),
            0)
      << log("again");
  expect_same_model("runs/first", "again");
  auto settings = [&](const std::string& path) {  // config.yaml without its comment lines
    std::string out, line;
    std::istringstream in(file(path));
    while (std::getline(in, line)) {
      if (line.rfind("#", 0) != 0) out += line + "\n";
    }
    return out;
  };
  EXPECT_EQ(settings("runs/first/config.yaml"), settings("again/config.yaml"))
      << "the config of a run of config.yaml is that config.yaml";
}

// mode: async, clock: virtual — SIGKILLed right after its second checkpoint,
// resumed: model.pt and updates.csv as the uninterrupted run's.
TEST_F(ResumeCliTest, KilledAsyncRunResumesToTheSameModelBytes) {
  ASSERT_EQ(flight_run({"cfg/async.yaml", "-o", "whole"}, "whole"), 0) << log("whole");
  ASSERT_EQ(
      flight_run({"cfg/async.yaml", "-o", "killed", "--crash-after-checkpoint", "2"}, "killed"),
      kKilled)
      << log("killed");
  EXPECT_EQ(csv_rows("killed/rounds.csv"), 2u);
  EXPECT_FALSE(fs::exists(dir_.file("killed/model.pt")));
  ASSERT_EQ(flight_run({"--resume", "killed"}, "resumed"), 0) << log("resumed");
  expect_same_model("whole", "killed");
  auto without_merge_times = [&](const std::string& path) {
    // updates.csv's last column is the wall time a merge took.
    std::string out, line;
    std::istringstream in(file(path));
    while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
    return out;
  };
  EXPECT_EQ(without_merge_times("killed/updates.csv"), without_merge_times("whole/updates.csv"));
}

// The same, SIGKILLed from outside at whatever moment it is once its second
// checkpoint exists (possibly while writing the third).
TEST_F(ResumeCliTest, AsyncRunKilledFromOutsideResumesToTheSameModelBytes) {
  ASSERT_EQ(flight_run({"cfg/async.yaml", "-o", "whole"}, "whole"), 0) << log("whole");
  auto p = Process::spawn(command({"cfg/async.yaml", "-o", "killed"}, "killed", ""));
  ASSERT_TRUE(p.is_ok()) << p.status();
  ASSERT_TRUE(poll_until(
      [&] {
        const std::string latest = file("killed/checkpoints/LATEST");
        return !latest.empty() && latest >= "round-000002";
      },
      minutes(5)))
      << log("killed");
  (*p)->signal(SIGKILL);
  EXPECT_EQ((*p)->wait(), kKilled) << "finished before the kill: " << log("killed");
  ASSERT_EQ(flight_run({"--resume", "killed"}, "resumed"), 0) << log("resumed");
  expect_same_model("whole", "killed");
}

}  // namespace
}  // namespace flight
