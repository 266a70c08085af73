// The launchers on the real engines: `flight run --launcher processes | slurm |
// mpi` runs a small 3-tier Fashion-MNIST job whose final model.pt must be
// bit-identical to the embedded run of the same config and seed.
//
// Slurm: each test starts a private single-node cluster — munged, slurmctld and
// slurmd with a generated slurm.conf in a temp dir (needs root, as in CI) — and
// tears it down after. MPI: Debian's OpenMPI, `mpirun --oversubscribe`.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "flight/base/process.h"

namespace flight {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Runs a command to completion, stdout+stderr into `log`; its exit code.
int run(std::vector<std::string> argv, const std::string& log,
        std::map<std::string, std::string> env = {}) {
  ProcessOptions po;
  po.argv = std::move(argv);
  po.env = std::move(env);
  po.unset_env = {"SLURM_JOB_ID", "SLURM_JOBID"};
  po.out = Redirect::file(log, true);
  po.err = Redirect::file(log, true);
  po.new_process_group = true;
  auto p = Process::spawn(std::move(po));
  EXPECT_TRUE(p.is_ok()) << p.status();
  if (!p.is_ok()) return -1;
  auto rc = (*p)->wait_for(std::chrono::minutes(5));
  EXPECT_TRUE(rc.has_value()) << "timed out: " << log;
  return rc ? *rc : -1;
}

// Processes whose command line mentions `needle` (other than this one).
std::vector<std::string> processes_mentioning(const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (pid == std::to_string(::getpid())) continue;
    std::string cmd = read_text_file(e.path().string() + "/cmdline");
    for (char& c : cmd) {
      if (c == '\0') c = ' ';
    }
    if (cmd.find(needle) != std::string::npos) out.push_back(pid + ": " + cmd);
  }
  return out;
}

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = dir_.file("job.yaml");
    // 3 tiers: coordinator, 2 aggregators, 4 workers; 2 hosts, one subtree each.
    write(config_, R"(name: deploy-test
seed: 11
topology: {generate: tiers, aggregators: [2], workers: 4}
model: {name: mlp}
data:
  dataset: fashion_mnist
  partition: {method: dirichlet, alpha: 1.0}
train: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, max_steps: 5}
strategy: {name: fedavg, participation: 1.0}
rounds: 2
threads: 2
deploy: {hosts: 2, placement: subtree, register_timeout_s: 120}
)");
  }

  // flight run CONFIG -o DIR -q EXTRA...; returns the exit code.
  int flight_run(const std::string& out, std::vector<std::string> extra = {},
                 std::vector<std::string> prefix = {},
                 std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = std::move(prefix);
    for (const auto& a : {std::string(FLIGHT_BINARY), std::string("run"), config_,
                          std::string("-o"), dir_.file(out), std::string("-q")}) {
      argv.push_back(a);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, dir_.file(out + ".log"), std::move(env));
  }

  std::string log(const std::string& out) { return read_text_file(dir_.file(out + ".log")); }

  // The embedded run's model.pt bytes, and that `out`'s are identical.
  void expect_same_model_as_embedded(const std::string& out) {
    ASSERT_EQ(flight_run("embedded"), 0) << log("embedded");
    const std::string want = read_text_file(dir_.file("embedded/model.pt"));
    const std::string got = read_text_file(dir_.file(out + "/model.pt"));
    ASSERT_GT(want.size(), 100000u);
    EXPECT_TRUE(got == want) << out << "/model.pt differs from the embedded run's (" << got.size()
                             << " vs " << want.size() << " bytes)";
    EXPECT_TRUE(processes_mentioning(dir_.file(out)).empty())
        << "left behind: " << processes_mentioning(dir_.file(out)).front();
  }

  TempDir dir_{"deploy-test"};
  std::string config_;
};

TEST_F(LauncherTest, DryRunAndListEndpointsPrintTheSubtreePlacement) {
  ASSERT_EQ(flight_run("dry", {"--dry-run", "--launcher", "slurm"}), 0) << log("dry");
  const std::string out = log("dry");
  EXPECT_NE(out.find("\"launcher\":\"slurm\""), std::string::npos) << out;
  // One site (an aggregator and its workers) per host.
  EXPECT_NE(out.find("host-0\t"), std::string::npos) << out;
  EXPECT_NE(out.find("host-1\t"), std::string::npos) << out;
  EXPECT_EQ(out.find("host-2"), std::string::npos) << out;
  EXPECT_EQ(out.find("2 aggregators"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_.file("dry"))) << "a dry run starts nothing";
  ASSERT_EQ(flight_run("list", {"--list-endpoints", "--hosts", "1"}), 0) << log("list");
  EXPECT_NE(log("list").find("host-0\t4 workers"), std::string::npos) << log("list");
  EXPECT_EQ(log("list").find("host-1"), std::string::npos) << log("list");
}

TEST_F(LauncherTest, ProcessesLauncherGivesTheEmbeddedModelBitForBit) {
  ASSERT_EQ(flight_run("processes", {"--launcher", "processes"}), 0) << log("processes");
  EXPECT_TRUE(fs::exists(dir_.file("processes/deploy/endpoint-host-1.log")));
  const std::string tasks = read_text_file(dir_.file("processes/tasks.csv"));
  EXPECT_NE(tasks.find("host-0"), std::string::npos) << tasks;
  EXPECT_NE(tasks.find("host-1"), std::string::npos) << tasks;
  expect_same_model_as_embedded("processes");
}

TEST_F(LauncherTest, ProcessesLauncherTearsDownOnCtrlC) {
  ProcessOptions po;
  po.argv = {FLIGHT_BINARY, "run",        config_,     "-o",    dir_.file("interrupted"),
             "-q",          "--launcher", "processes", "--set", "rounds=500"};
  po.out = Redirect::file(dir_.file("interrupted.log"));
  po.err = Redirect::file(dir_.file("interrupted.log"), true);
  auto p = Process::spawn(std::move(po));
  ASSERT_TRUE(p.is_ok()) << p.status();
  // Interrupt once a round has finished: hosts, service and redis are all up.
  ASSERT_TRUE(poll_until(
      [&] {
        return read_text_file(dir_.file("interrupted/rounds.csv")).find("\n1,") !=
               std::string::npos;
      },
      std::chrono::minutes(2)))
      << log("interrupted");
  EXPECT_FALSE(processes_mentioning(dir_.file("interrupted")).empty());
  (*p)->signal(SIGINT);
  auto rc = (*p)->wait_for(seconds(60));
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 128 + SIGINT) << log("interrupted");
  EXPECT_TRUE(processes_mentioning(dir_.file("interrupted")).empty())
      << "left behind: " << processes_mentioning(dir_.file("interrupted")).front();
}

TEST_F(LauncherTest, MpiLauncherGivesTheEmbeddedModelBitForBit) {
  // 3 ranks: the coordinator and 2 hosts.
  ASSERT_EQ(flight_run("mpi", {"--launcher", "mpi"},
                       {"mpirun", "--oversubscribe", "--allow-run-as-root", "-np", "3"},
                       {{"OMPI_MCA_mpi_warn_on_fork", "0"}}),
            0)
      << log("mpi");
  const std::string tasks = read_text_file(dir_.file("mpi/tasks.csv"));
  EXPECT_NE(tasks.find("host-1"), std::string::npos) << tasks;
  expect_same_model_as_embedded("mpi");
}

// Emulated hosts (root): each host in its own network namespace behind a
// capped veth, weights over tcp connectors bound inside the namespaces. Same
// model bit for bit; the namespaces are gone afterwards, and a stale one left
// by a "crashed" earlier run with the same prefix is cleaned up first.
TEST_F(LauncherTest, EmulatedHostsRunTheRoundOverCappedLinks) {
  ASSERT_EQ(run({"ip", "netns", "add", "flemut-h9"}, dir_.file("netns.log")), 0)
      << read_text_file(dir_.file("netns.log"));
  ASSERT_EQ(
      flight_run("emulated", {"--launcher", "processes", "--set", "deploy.emulate.prefix=flemut",
                              "--set", "deploy.emulate.links.coordinator=200", "--set",
                              "deploy.emulate.links.host=100"}),
      0)
      << log("emulated");
  EXPECT_NE(log("emulated").find("on emulated hosts"), std::string::npos) << log("emulated");
  EXPECT_NE(read_text_file(dir_.file("emulated/deploy/topology.yaml")).find("emulated-host-1"),
            std::string::npos);
  ASSERT_EQ(run({"ip", "netns", "list"}, dir_.file("netns-after.log")), 0);
  EXPECT_EQ(read_text_file(dir_.file("netns-after.log")).find("flemut"), std::string::npos)
      << read_text_file(dir_.file("netns-after.log"));
  expect_same_model_as_embedded("emulated");
}

TEST_F(LauncherTest, EmulatedHostsMediateWeightsThroughRedisOnTheCoordinatorsHost) {
  // A Redis the namespaces cannot reach (TEST-NET-1): the launcher must point
  // the data plane at its own Redis on the coordinator's emulated host.
  ASSERT_EQ(
      flight_run("mediated",
                 {"--launcher", "processes", "--set", "deploy.emulate.prefix=flemur", "--set",
                  "data_plane.connector.kind=redis", "--set", "data_plane.connector.host=192.0.2.1",
                  "--set", "data_plane.connector.port=6379"}),
      0)
      << log("mediated");
  EXPECT_NE(log("mediated").find(R"("host":"10.77.0.1","kind":"redis")"), std::string::npos)
      << log("mediated");
  // Mediated, not direct: no per-host tcp connectors were written.
  EXPECT_FALSE(fs::exists(dir_.file("mediated/deploy/topology.yaml")));
  ASSERT_EQ(run({"ip", "netns", "list"}, dir_.file("netns-after.log")), 0);
  EXPECT_EQ(read_text_file(dir_.file("netns-after.log")).find("flemur"), std::string::npos)
      << read_text_file(dir_.file("netns-after.log"));
  expect_same_model_as_embedded("mediated");
}

// A private single-node Slurm cluster for one test.
class SlurmTest : public LauncherTest {
 protected:
  void SetUp() override {
    LauncherTest::SetUp();
    const std::string d = slurm_.path();
    fs::create_directories(d + "/state");
    fs::create_directories(d + "/spool");
    {
      std::string key(1024, '\0');
      std::ifstream("/dev/urandom").read(key.data(), key.size());
      write(d + "/munge.key", key);
      fs::permissions(d + "/munge.key", fs::perms::owner_read);
    }
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    auto ctld_port = free_loopback_port();
    auto slurmd_port = free_loopback_port();
    ASSERT_TRUE(ctld_port.is_ok() && slurmd_port.is_ok());
    conf_ = d + "/slurm.conf";
    write(conf_, std::string("ClusterName=flighttest\nSlurmctldHost=") + host +
                     "\nSlurmUser=root\nSlurmdUser=root\nSlurmctldPort=" +
                     std::to_string(*ctld_port) + "\nSlurmdPort=" + std::to_string(*slurmd_port) +
                     "\nAuthType=auth/munge\nAuthInfo=socket=" + d +
                     "/munge.sock\nCredType=cred/munge\nStateSaveLocation=" + d +
                     "/state\nSlurmdSpoolDir=" + d + "/spool\nSlurmctldPidFile=" + d +
                     "/slurmctld.pid\nSlurmdPidFile=" + d + "/slurmd.pid\nSlurmctldLogFile=" + d +
                     "/slurmctld.log\nSlurmdLogFile=" + d +
                     "/slurmd.log\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                     "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
                     "JobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n"
                     "JobAcctGatherType=jobacct_gather/none\nMpiDefault=none\nReturnToService=2\n"
                     "SlurmdParameters=config_overrides\nNodeName=" +
                     host + " CPUs=8 State=UNKNOWN\nPartitionName=debug Nodes=" + host +
                     " Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES\n");
    env_ = {{"SLURM_CONF", conf_}};
    daemon({"munged", "-F", "--force", "--key-file=" + d + "/munge.key",
            "--socket=" + d + "/munge.sock", "--pid-file=" + d + "/munged.pid",
            "--seed-file=" + d + "/munge.seed", "--log-file=" + d + "/munged.log"},
           "munged");
    ASSERT_TRUE(poll_until([&] { return fs::exists(d + "/munge.sock"); }, seconds(20)));
    daemon({"slurmctld", "-D", "-i", "-f", conf_}, "slurmctld");
    daemon({"slurmd", "-D", "-f", conf_}, "slurmd");
    ASSERT_TRUE(poll_until(
        [&] {
          const std::string out = dir_.file("sinfo.log");
          fs::remove(out);
          return run({"sinfo", "-h", "-o", "%t"}, out, env_) == 0 &&
                 read_text_file(out).find("idle") != std::string::npos;
        },
        seconds(60)))
        << read_text_file(d + "/slurmctld.log") << read_text_file(d + "/slurmd.log");
  }

  void daemon(std::vector<std::string> argv, const std::string& name) {
    ProcessOptions po;
    po.argv = std::move(argv);
    po.env = env_;
    po.out = Redirect::file(slurm_.file(name + ".out"));
    po.err = Redirect::file(slurm_.file(name + ".out"), true);
    po.new_process_group = true;
    auto p = Process::spawn(std::move(po));
    ASSERT_TRUE(p.is_ok()) << p.status();
    daemons_.push_back(std::move(*p));
  }

  void TearDown() override {
    // slurmd first (it owns job steps), the controller, then munge.
    for (auto it = daemons_.rbegin(); it != daemons_.rend(); ++it) (*it)->terminate();
    daemons_.clear();
  }

  TempDir slurm_{"slurm-test"};
  std::string conf_;
  std::map<std::string, std::string> env_;
  std::vector<std::unique_ptr<Process>> daemons_;
};

TEST_F(SlurmTest, SbatchOutsideAnAllocationGivesTheEmbeddedModelBitForBit) {
  ASSERT_EQ(flight_run("sbatch", {"--launcher", "slurm"}, {}, env_), 0)
      << log("sbatch") << read_text_file(slurm_.file("slurmctld.log"));
  const std::string script = read_text_file(dir_.file("sbatch/deploy/endpoints.sbatch"));
  EXPECT_NE(script.find("#SBATCH --ntasks=2"), std::string::npos) << script;
  EXPECT_NE(script.find("--multi-prog"), std::string::npos) << script;
  EXPECT_NE(log("sbatch").find("submitted slurm job"), std::string::npos) << log("sbatch");
  expect_same_model_as_embedded("sbatch");
  // scancel ended the job: nothing of it is left in the queue.
  const std::string q = dir_.file("squeue.log");
  ASSERT_TRUE(poll_until(
      [&] {
        fs::remove(q);
        return run({"squeue", "-h", "-o", "%i %T"}, q, env_) == 0 && read_text_file(q).empty();
      },
      seconds(60)))
      << read_text_file(q);
}

TEST_F(SlurmTest, SrunInsideSallocGivesTheEmbeddedModelBitForBit) {
  ASSERT_EQ(flight_run("salloc", {"--launcher", "slurm"}, {"salloc", "--ntasks=2"}, env_), 0)
      << log("salloc") << read_text_file(slurm_.file("slurmctld.log"));
  EXPECT_NE(log("salloc").find("srun step with 2 hosts"), std::string::npos) << log("salloc");
  EXPECT_FALSE(fs::exists(dir_.file("salloc/deploy/endpoints.sbatch")));
  expect_same_model_as_embedded("salloc");
}

}  // namespace
}  // namespace flight
