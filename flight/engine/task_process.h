// Setting up a process that runs the round's tasks (the embedded run, `flight
// endpoint`): torch/BLAS threads, the function registry, and the process-wide
// stores that tasks put through.
#pragma once

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::transport {
class ConnectorConfig;
class Store;
struct StoreStats;
struct Ref;
}  // namespace flight::transport

namespace flight::engine {

// One intra-op torch thread and one OpenBLAS thread per calling thread: tasks
// run side by side on the invoker's threads, so BLAS threads of their own
// would oversubscribe the cores (and results would depend on the thread count).
void configure_task_threads();

// configure_task_threads() plus the engine's functions (tasks.h) in
// faas::default_functions().
void configure_task_process();

// The process-wide store that puts through `connector` (built once per
// distinct config). Any store resolves any Ref.
StatusOr<transport::Store*> store_for(const nlohmann::json& connector);
// The same for a shared config (a task's put target, a Ref's connector): a
// config this thread resolved before is found by pointer.
StatusOr<transport::Store*> store_for(const transport::ConnectorConfig& connector);

// Removes a consumed update: through `consumer` (its cache and the object in
// its connector) and, when the update was put by another store of this
// process (a tier with its own connector), through that one too, so the
// producer's cache of its put and its scope index let go of it as well.
void evict_consumed(transport::Store& consumer, const transport::Ref& ref);

// The counters of every store store_for() built in this process, summed: the
// bytes this process handed to and received from its connectors.
transport::StoreStats process_store_stats();

}  // namespace flight::engine
