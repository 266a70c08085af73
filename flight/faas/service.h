// The REST invocation service behind `flight serve` (docs/rest-api.md has the
// routes). Boost.Beast over Asio: HTTP/1.1 keep-alive, `threads` I/O threads,
// one strand per connection; long polls wait on timers and wake-ups, never
// by blocking a thread.
//
// Replicas: with Redis state, several services may share one key prefix; one
// leads and serves, the others answer 503 (X-Flight-Role: standby) until the
// leader's lead lapses (leader_ttl_s after it died), then one of them loads the
// state and serves (state_backend.h has the protocol). Clients given several
// service URLs move to the next one on a network error or a 503.
//
// Embeddable: tests start it in-process on port 0 and read port().
// Thread safety: start()/stop()/port() from one controlling thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::faas {

struct ServiceOptions {
  std::string host = "127.0.0.1";
  int port = 0;                          // 0 picks a free port
  std::string token;                     // one admin bearer token, or:
  std::string token_file;                // tokens with roles (flight/faas/auth.h, docs/rest-api.md)
  std::string tls_cert;                  // PEM certificate chain; with tls_key, serve HTTPS only
  std::string tls_key;                   // PEM private key
  std::string state = "memory";          // "memory" | "redis://host:port[/db]"
  std::string state_prefix = "flight:";  // Redis key prefix
  size_t threads = 2;                    // I/O threads
  uint64_t max_body_bytes = 16ull << 20;  // larger request bodies get 413
  size_t max_batch = 10000;               // tasks per POST /v1/tasks (413 beyond)
  double lease_s = 30;                    // task lease; endpoints renew every lease_s / 3
  int max_attempts = 3;                   // leases per task before it fails
  double leader_ttl_s = 3;         // Redis state: the lead lapses this long after its holder dies
  size_t max_queue = 100000;       // pending tasks per endpoint name (429 beyond)
  double read_timeout_s = 30;      // a request must arrive within this (408 / close)
  double max_wait_s = 60;          // long-poll waits are clamped to this
  double result_ttl_s = 3600;      // finished tasks are kept this long
  double sweep_interval_s = 0.05;  // lease / deadline resolution

  Status validate() const;
  // Keys as the field names; unknown keys are an error.
  static StatusOr<ServiceOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;  // without the token
};

class ServiceCore;

class Service {
 public:
  explicit Service(ServiceOptions options);
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Validates options, reads the token file and the TLS key pair, opens the
  // state backend (and restores its tasks), binds and starts serving.
  Status start();
  int port() const;
  std::string url() const;  // "http://host:port" ("https://" with TLS)
  // Stops accepting, cancels in-flight requests and joins the threads; a
  // leader hands the lead over at once. Idempotent.
  void stop();
  // "leader" (serving), "standby" (another replica leads; waiting to take
  // over) or "fenced" (lost the lead: serves no more; restart it).
  std::string role() const;

 private:
  std::unique_ptr<ServiceCore> impl_;
};

}  // namespace flight::faas
