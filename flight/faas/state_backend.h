// Where the REST service keeps durable task state. The service's in-memory
// tables are authoritative while it runs; a backend receives every change
// (write-through) and hands everything back on start, so a restarted service
// loses no submitted task and no stored result.
//
//   "memory"                  nothing is persisted (the default)
//   "redis://host:port[/db]"  a real Redis: hashes <prefix>tasks, <prefix>endpoints,
//                             <prefix>idempotency (values are JSON documents)
//
// One service per Redis key prefix: the backend is a journal, not a shared
// store for several replicas.
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
};

// "memory" or "redis://host:port[/db]"; unknown schemes are InvalidArgument,
// an unreachable Redis is Unavailable.
StatusOr<std::unique_ptr<StateBackend>> make_state_backend(
    const std::string& spec, const std::string& key_prefix = "flight:");

}  // namespace flight::faas
