#include "flight/engine/task_process.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "flight/engine/tasks.h"
#include "flight/faas/functions.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

struct SharedStores {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<transport::Store>> stores;  // by connector config
};

SharedStores& shared_stores() {
  static SharedStores s;
  return s;
}

StatusOr<transport::Store*> shared_store_for(const nlohmann::json& connector) {
  auto& [mu, stores] = shared_stores();
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = connector.dump();
  auto it = stores.find(key);
  if (it == stores.end()) {
    FLIGHT_ASSIGN_OR_RETURN(auto store, transport::Store::create(connector));
    it = stores.emplace(key, std::move(store)).first;
  }
  return it->second.get();
}

}  // namespace

StatusOr<transport::Store*> store_for(const nlohmann::json& connector) {
  // Every task asks; a thread sees few distinct connectors: compare the JSON
  // (no dump, no lock) against the ones this thread resolved before.
  thread_local std::vector<std::pair<nlohmann::json, transport::Store*>> seen;
  for (const auto& [config, store] : seen) {
    if (config == connector) return store;
  }
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, shared_store_for(connector));
  if (seen.size() < 16) seen.emplace_back(connector, store);
  return store;
}

StatusOr<transport::Store*> store_for(const transport::ConnectorConfig& connector) {
  thread_local std::vector<std::pair<transport::ConnectorConfig, transport::Store*>> seen;
  for (const auto& [config, store] : seen) {
    if (config.same(connector)) return store;
  }
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(*connector));
  // Bounded: a long-lived endpoint sees a new config object per task.
  if (seen.size() >= 16) seen.erase(seen.begin());
  seen.emplace_back(connector, store);
  return store;
}

void evict_consumed(transport::Store& consumer, const transport::Ref& ref) {
  (void)consumer.evict(ref);
  transport::Store* producer = nullptr;
  {
    auto& [mu, stores] = shared_stores();
    std::lock_guard<std::mutex> lock(mu);
    if (stores.size() < 2) return;  // one store: the consumer is the producer
    for (const auto& [config, store] : stores) {
      if (store.get() != &consumer && ref.connector == store->shared_config()) {
        producer = store.get();
        break;
      }
    }
  }
  if (producer != nullptr) (void)producer->evict(ref);
}

transport::StoreStats process_store_stats() {
  auto& [mu, stores] = shared_stores();
  std::lock_guard<std::mutex> lock(mu);
  transport::StoreStats total;
  for (const auto& [config, store] : stores) total += store->stats();
  return total;
}

void configure_task_threads() {
  at::set_num_threads(1);
  // Looked up at run time: libtorch may be linked against OpenBLAS or another BLAS.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(1);
  }
}

void configure_task_process() {
  configure_task_threads();
  register_functions(faas::default_functions());
}

}  // namespace flight::engine
