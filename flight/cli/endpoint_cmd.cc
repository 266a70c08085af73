// `flight endpoint`: the edge agent that runs tasks for `flight serve`.
#include "flight/base/logging.h"
#include "flight/cli/command.h"
#include "flight/engine/job_cache.h"
#include "flight/engine/task_process.h"
#include "flight/faas/endpoint_agent.h"
#include "flight/faas/stop_signals.h"

namespace flight::cli {
namespace {

int endpoint(const faas::EndpointAgentOptions& options, const nlohmann::json& caches) {
  if (options.token_file.empty()) return usage_error("--token-file is required");
  Status valid = options.validate();
  if (!valid.is_ok()) return usage_error(valid.message());
  auto cache_options = engine::CacheOptions::from_json(caches);
  if (!cache_options.is_ok()) return usage_error(cache_options.status().message());
  // train / aggregate / evaluate, with one torch thread per task thread.
  engine::configure_task_process();
  engine::configure_caches(*cache_options);
  faas::EndpointAgent agent(options);
  faas::StopSignals signals([&agent](int sig) {
    spdlog::info("flight endpoint: signal {}, stopping", sig);
    agent.stop();
  });
  Status st = agent.run();
  if (!st.is_ok()) return fail("endpoint: " + st.message());
  return kExitOk;
}

}  // namespace

FLIGHT_COMMAND(
    endpoint,
    {"", "endpoint",
     "Run an edge endpoint: register with a `flight serve`, run its tasks, post results",
     [](CLI::App* app) {
       auto o = std::make_shared<faas::EndpointAgentOptions>();
       app->footer(
           "Example:\n"
           "  flight endpoint --service http://10.0.0.5:8080 --token-file token --name edge0 "
           "--threads 4\n"
           "Connects outward only (works behind NAT). Several processes may share a --name: they\n"
           "share its task queue. Reconnects with backoff while the service is away. SIGTERM: "
           "hands\n"
           "back unstarted tasks, lets running ones finish (--grace-s), posts results, exits 0.");
       app->add_option("--service", o->service_url, "Service URL, http(s)://host:port")->required();
       app->add_option("--ca-file", o->ca_file, "PEM CA bundle to verify an https service");
       app->add_option("--token-file", o->token_file, "File holding the bearer token")->required();
       app->add_option("--name", o->name, "Endpoint name tasks are addressed to")->required();
       app->add_option("--threads", o->threads, "Concurrent tasks")->capture_default_str();
       app->add_option("--prefetch", o->prefetch,
                       "Extra leased tasks beyond --threads (0 = threads)")
           ->capture_default_str();
       app->add_option("--poll-wait-s", o->poll_wait_s, "Long-poll wait")->capture_default_str();
       app->add_option("--grace-s", o->grace_s, "On SIGTERM, seconds running tasks may finish")
           ->capture_default_str();
       app->add_option("--max-backoff-s", o->max_backoff_s, "Longest reconnect backoff")
           ->capture_default_str();
       auto job_cache = std::make_shared<std::string>();
       auto dataset_cache = std::make_shared<std::string>();
       app->add_option("--job-cache", *job_cache,
                       "Bytes of job runtimes kept once unused, LRU (e.g. 512MiB; default 1GiB)");
       app->add_option("--dataset-cache", *dataset_cache,
                       "Bytes of datasets kept once unused, LRU (e.g. 512MiB; default 1GiB)");
       return [o, job_cache, dataset_cache] {
         nlohmann::json caches = nlohmann::json::object();
         if (!job_cache->empty()) caches["job_bytes"] = *job_cache;
         if (!dataset_cache->empty()) caches["dataset_bytes"] = *dataset_cache;
         return endpoint(*o, caches);
       };
     }});

}  // namespace flight::cli
