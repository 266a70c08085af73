// `flight serve`: the REST invocation service (docs/rest-api.md).
#include <condition_variable>
#include <iostream>
#include <mutex>

#include "flight/base/logging.h"
#include "flight/cli/command.h"
#include "flight/faas/service.h"
#include "flight/faas/stop_signals.h"

namespace flight::cli {
namespace {

struct ServeArgs {
  faas::ServiceOptions options;
  uint64_t max_body = 16ull << 20;
};

int serve(const ServeArgs& args) {
  faas::ServiceOptions options = args.options;
  options.max_body_bytes = args.max_body;
  if (options.token_file.empty()) return usage_error("--token-file is required");
  Status valid = options.validate();
  if (!valid.is_ok()) return usage_error(valid.message());

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  faas::StopSignals signals([&](int) {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  });
  faas::Service service(options);
  Status st = service.start();
  if (!st.is_ok()) return fail("serve: " + st.message());
  // Tests and scripts read this line to learn the port (port 0 picks one).
  std::cout << "flight serve: listening on " << service.url() << std::endl;
  bool lost = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    // A replica that lost the lead serves nothing more: exit so that a
    // supervisor restarts it as a standby.
    while (!cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return stop; })) {
      if ((lost = service.role() == "fenced")) break;
    }
  }
  spdlog::info("flight serve: stopping");
  service.stop();
  if (lost) return fail("serve: this replica lost the lead to another one");
  return kExitOk;
}

}  // namespace

FLIGHT_COMMAND(
    serve,
    {"", "serve",
     "Run the REST invocation service (tasks, endpoints, results; see docs/rest-api.md)",
     [](CLI::App* app) {
       auto args = std::make_shared<ServeArgs>();
       auto& o = args->options;
       app->footer(
           "Example:\n"
           "  head -c 24 /dev/urandom | base64 > token\n"
           "  flight serve --port 8080 --token-file token --state redis://127.0.0.1:6379\n"
           "  flight endpoint --service http://127.0.0.1:8080 --token-file token --name edge0\n"
           "Prints 'flight serve: listening on http://HOST:PORT' when ready; SIGTERM stops it.");
       app->add_option("--host", o.host, "Address to listen on")->capture_default_str();
       app->add_option("--port", o.port, "TCP port (0 picks a free one)")->capture_default_str();
       app->add_option("--token-file", o.token_file,
                       "Bearer tokens: one bare token (admin) or lines 'TOKEN ROLE [NAME]'")
           ->required();
       app->add_option("--tls-cert", o.tls_cert,
                       "PEM certificate chain: serve HTTPS only (with --tls-key)");
       app->add_option("--tls-key", o.tls_key, "PEM private key for --tls-cert");
       app->add_option("--state", o.state, "Task state: memory | redis://host:port[/db]")
           ->capture_default_str();
       app->add_option("--state-prefix", o.state_prefix, "Redis key prefix")->capture_default_str();
       app->add_option("--threads", o.threads, "I/O threads")->capture_default_str();
       app->add_option("--max-body", args->max_body, "Largest request body in bytes (413 beyond)")
           ->capture_default_str();
       app->add_option("--max-batch", o.max_batch, "Most tasks per submit request")
           ->capture_default_str();
       app->add_option("--lease-s", o.lease_s, "Task lease in seconds (endpoints renew at a third)")
           ->capture_default_str();
       app->add_option("--max-attempts", o.max_attempts, "Leases per task before it fails")
           ->capture_default_str();
       app->add_option("--leader-ttl-s", o.leader_ttl_s,
                       "Redis state: seconds after a leader dies before a standby replica "
                       "takes over")
           ->capture_default_str();
       app->add_option("--max-queue", o.max_queue, "Pending tasks per endpoint name (429 beyond)")
           ->capture_default_str();
       app->add_option("--read-timeout-s", o.read_timeout_s,
                       "Seconds a request may take to arrive (408)")
           ->capture_default_str();
       app->add_option("--result-ttl-s", o.result_ttl_s, "Seconds finished tasks are kept")
           ->capture_default_str();
       return [args] { return serve(*args); };
     }});

}  // namespace flight::cli
