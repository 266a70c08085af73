// Where the REST service keeps durable task state. The service's in-memory
// tables are authoritative while it runs; a backend receives every change
// (write-through) and hands everything back on start, so a restarted service
// loses no submitted task and no stored result.
//
//   "memory"                  nothing is persisted (the default)
//   "redis://[:password@]host:port[/db]"
//                             a real Redis (AUTH with the password, for
//                             `requirepass`): hashes <prefix>tasks, <prefix>endpoints,
//                             <prefix>idempotency (values are JSON documents)
//
// Replicas: several services may share one Redis key prefix. One of them
// leads (a Redis key `<prefix>leader` holding its random id, renewed before
// its TTL runs out) and serves from its in-memory tables; the others stand by
// and take over, by loading the journal, when the leader's key expires. The
// leader's writes are fenced: each runs in a Lua script that first checks the
// leader key, so a replica that lost the lead (paused, partitioned) cannot
// overwrite its successor's state; its first refused write makes fenced_out()
// true and it stops serving.
//
// Thread safety: a backend is used under the service state's lock; methods
// need not be thread-safe.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::faas {

class StateBackend {
 public:
  virtual ~StateBackend();
  // (id, document) pairs; a later put of the same id replaces it.
  virtual Status put_tasks(const std::vector<std::pair<std::string, std::string>>& docs) = 0;
  virtual Status erase_tasks(const std::vector<std::string>& ids) = 0;
  virtual Status put_endpoint(const std::string& id, const std::string& doc) = 0;
  virtual Status erase_endpoint(const std::string& id) = 0;
  virtual Status put_idempotency(const std::string& key, const std::string& doc) = 0;
  virtual Status erase_idempotency(const std::vector<std::string>& keys) = 0;

  struct Snapshot {
    std::vector<std::string> tasks, endpoints;
    std::vector<std::pair<std::string, std::string>> idempotency;  // key, doc
  };
  virtual StatusOr<Snapshot> load() = 0;
  virtual std::string describe() const = 0;  // for logs: "memory", "redis://..."
  virtual bool durable() const = 0;

  // Acquires or renews the lead for `holder` for ttl_s; true while it leads.
  // A backend no other process can share (memory) always leads.
  virtual StatusOr<bool> hold_leadership(const std::string& holder, double ttl_s) = 0;
  // Gives the lead up at once if `holder` has it (a clean stop).
  virtual Status drop_leadership(const std::string& holder) = 0;
  // From now on every write succeeds only while `holder` leads.
  virtual void fence(const std::string& holder) = 0;
  // True once a write was refused because another holder leads.
  virtual bool fenced_out() const = 0;
};

// "memory" or "redis://[:password@]host:port[/db]"; unknown schemes are InvalidArgument,
// an unreachable Redis is Unavailable.
StatusOr<std::unique_ptr<StateBackend>> make_state_backend(
    const std::string& spec, const std::string& key_prefix = "flight:");

// The registered schemes ("memory", "redis", ...): the conformance suite
// (tests/faas/state_backend_test.cc) runs every one of them.
std::vector<std::string> state_backend_names();

}  // namespace flight::faas
