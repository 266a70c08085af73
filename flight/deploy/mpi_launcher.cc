// launcher: mpi — `mpirun -np N flight run CONFIG --launcher mpi`. Rank 0 is
// the coordinator (service, Redis when needed, the round driver); rank i > 0
// serves host i-1 as an in-process endpoint agent.
//
// Rendezvous without a shared file system: rank 0 starts the service and
// broadcasts {url, token} over MPI_COMM_WORLD; the hosts connect outward to
// that URL like any `flight endpoint`. The end of the run is a non-blocking
// barrier that the hosts poll with a pause (a blocking MPI call would spin a
// core for the whole run).
// The C API only: OpenMPI's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <thread>

#include "flight/base/logging.h"
#include "flight/deploy/launchers.h"
#include "flight/engine/task_process.h"
#include "flight/faas/endpoint_agent.h"

namespace flight::deploy {
namespace {

class MpiSession {
 public:
  MpiSession() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      owned_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiSession() {
    if (owned_) MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Rank 0's `text` on every rank.
  std::string broadcast(std::string text) const {
    int n = static_cast<int>(text.size());
    MPI_Bcast(&n, 1, MPI_INT, 0, MPI_COMM_WORLD);
    text.resize(static_cast<size_t>(n));
    MPI_Bcast(text.data(), n, MPI_CHAR, 0, MPI_COMM_WORLD);
    return text;
  }

  // Everyone arrives; waits without spinning a core.
  void barrier() const {
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    int done = 0;
    while (true) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
};

}  // namespace

StatusOr<engine::RunSummary> MpiLauncher::run(LaunchRequest r) {
  MpiSession mpi;
  if (mpi.size() < 2) {
    return invalid_argument(
        "launcher mpi needs at least 2 ranks (rank 0 coordinates, the others are hosts): "
        "mpirun -np N flight run CONFIG --launcher mpi");
  }
  // The world size decides the hosts; the placement follows it.
  DeployOptions d = r.deploy;
  d.hosts = mpi.size() - 1;
  FLIGHT_ASSIGN_OR_RETURN(Placement placement, plan(r.config, d));
  if (!placement.explicit_.empty()) {
    return invalid_argument("launcher mpi: topology node '" + placement.explicit_.begin()->first +
                            "' names an endpoint of its own; under mpi every host is a rank, so "
                            "remove `endpoint:` from the topology or use another launcher");
  }
  const auto& names = placement.hosts;  // every rank registers, even one with nothing placed
  r.run.placement = placement.assigned;

  if (mpi.rank() == 0) {
    std::unique_ptr<ControlPlane> plane;
    StatusOr<engine::RunSummary> summary = unavailable("deploy: mpi run did not start");
    auto address = coordinator_address(r.deploy.address, false);
    if (address.is_ok()) {
      auto started = ControlPlane::start(r.config, *address, r.output_dir + "/deploy");
      if (started.is_ok()) {
        plane = std::move(started).value();
      } else {
        summary = started.status();
      }
    } else {
      summary = address.status();
    }
    // Hosts wait for this broadcast: send it even on failure ("" = stop).
    nlohmann::json hello = plane ? nlohmann::json{{"url", plane->url()}, {"token", plane->token()}}
                                 : nlohmann::json::object();
    mpi.broadcast(hello.dump());
    if (plane) {
      // A host rank that dies takes the job down with it (mpirun), so no liveness check.
      summary = run_coordinator(
          *plane, names, r, [] { return Status::ok(); }, [&] { plane->stop(); });
    }
    mpi.barrier();  // the hosts stop
    return summary;
  }

  const auto hello = nlohmann::json::parse(mpi.broadcast(""));
  if (!hello.contains("url")) {
    mpi.barrier();
    return engine::RunSummary{};  // rank 0 failed and says why
  }
  faas::EndpointAgentOptions o;
  o.service_url = hello["url"].get<std::string>();
  o.token = hello["token"].get<std::string>();
  o.name = names[static_cast<size_t>(mpi.rank() - 1)];
  o.threads = static_cast<size_t>(r.deploy.threads);
  engine::configure_task_process();
  faas::EndpointAgent agent(o);
  Status served = Status::ok();
  std::thread serve([&] { served = agent.run(); });
  mpi.barrier();
  agent.stop();
  serve.join();
  if (!served.is_ok()) return served;
  return engine::RunSummary{};  // a host: the coordinator reports
}

}  // namespace flight::deploy
