// Fetching updates ahead of a fold: a small process-wide pool of fetch
// threads (a few for the whole process, not one per child), used by
// ChildFold (child_fold.h) for the children within its window.
#pragma once

#include "aggregators/ordered_fold.h"
#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/ref.h"
#include "transport/store.h"

namespace flight::engine {

// store.get(ref), pending. A memory connector's Ref is resolved inline (a
// lookup in this process, with no latency to hide: a ready value, no future);
// any other on the shared pool. `store` must outlive the future's completion
// (the stores of task_process.h live as long as the process).
aggregators::OrderedFold::Pending fetch_async(transport::Store& store, const transport::Ref& ref);

// store.get_bytes(ref) (checksum and structure verified), pending, as an
// EncodedUpdate a linear fold dequantises in place: no decoded float copy of
// a compressed child. Same inline/pool split as fetch_async.
aggregators::OrderedFold::Pending fetch_encoded_async(transport::Store& store,
                                                      const transport::Ref& ref);

}  // namespace flight::engine
