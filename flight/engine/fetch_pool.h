// Fetching an aggregator's child updates ahead of its fold: a small
// process-wide pool of fetch threads (a few for the whole process, not one per
// child) and a Prefetcher that keeps up to kPrefetchDepth children in flight.
#pragma once

#include <future>
#include <vector>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/ref.h"
#include "transport/store.h"

namespace flight::engine {

// Children's updates in order, up to kPrefetchDepth fetched ahead on the
// shared pool. Refs of a memory connector are fetched inline: they are a
// lookup in this process, with no latency to hide. `refs` must outlive the
// Prefetcher; its destructor waits for fetches still in flight.
class Prefetcher {
 public:
  static constexpr size_t kPrefetchDepth = 2;
  Prefetcher(transport::Store& store, const std::vector<transport::Ref>& refs)
      : store_(store), refs_(refs), ahead_(refs.size()) {}
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // refs[i]'s value; call with i = 0, 1, 2, ... in order.
  StatusOr<ParamSet> take(size_t i);

 private:
  transport::Store& store_;
  const std::vector<transport::Ref>& refs_;
  std::vector<std::future<StatusOr<ParamSet>>> ahead_;
};

}  // namespace flight::engine
