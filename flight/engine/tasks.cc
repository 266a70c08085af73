#include "flight/engine/tasks.h"

#include <algorithm>

#include "flight/base/time.h"
#include "flight/engine/child_fold.h"
#include "flight/engine/debug_update.h"
#include "flight/engine/dp_hooks.h"
#include "flight/engine/error_feedback.h"
#include "flight/engine/job.h"
#include "flight/engine/job_cache.h"
#include "flight/engine/secagg_worker.h"
#include "flight/engine/task_process.h"
#include "flight/faas/invoker.h"
#include "flight/learning/trainer.h"
#include "flight/params/param_ops.h"
#include "transport/store.h"

namespace flight::engine {
namespace {

using nlohmann::json;

transport::PutOptions put_options(const PutTarget& put) {
  transport::PutOptions o;
  o.scope = put.scope;
  return o;
}

// An update (a worker's model or delta, an aggregator's partial sum) travels
// in the run's encoding (error_feedback.h: sparse for topk); `stream` seeds
// its stochastic rounding, so reruns put the same bytes.
transport::PutOptions update_put_options(const JobRuntime& rt, const PutTarget& put, int64_t stream,
                                         int64_t round) {
  transport::PutOptions o = put_options(put);
  o.encoding = update_encoding(rt.job);
  o.encoding.seed = task_seed(rt.job.seed, stream, round);
  return o;
}

// Folds the children's bases (async) with the children's weights into `out`.
Status fold_bases(const AggregateArgs& args, const JobRuntime& rt, transport::Store& store,
                  AggregateResult* out) {
  auto base_fold = rt.strategy->begin();
  for (const auto& c : args.children) {
    if (!c.base) {
      return invalid_argument("aggregator " + args.node + ": child " + c.node +
                              " has no 'base' while others have");
    }
    FLIGHT_ASSIGN_OR_RETURN(ParamSet base, store.get(*c.base));
    FLIGHT_RETURN_IF_ERROR(base_fold->accumulate(base, c.weight)
                               .with_context("aggregator " + args.node + ": base of " + c.node));
    out->bytes_fetched += c.base->size;
    if (c.base_owned) (void)store.evict(*c.base);
  }
  FLIGHT_ASSIGN_OR_RETURN(auto base_mean, base_fold->finalize());
  FLIGHT_ASSIGN_OR_RETURN(auto base_out, store.put(base_mean.params, put_options(args.put)));
  out->bytes_put += base_out.size;
  out->base = std::move(base_out);
  return Status::ok();
}

// Secure aggregation: the update becomes the worker's masked vector, put as
// is (masked words do not compress). Aggregators see a count of 1, not the
// worker's weight, which travels masked; so does DP's clip bit.
Status put_masked(const TrainArgs& args, const JobRuntime& rt, const ParamSet& global,
                  const ParamSet& trained, transport::Store& store, TrainResult* out) {
  FLIGHT_ASSIGN_OR_RETURN(ParamSet masked,
                          mask_update(args, rt, global, trained, out->weight, out->dp_unclipped));
  FLIGHT_ASSIGN_OR_RETURN(out->update, store.put(masked, put_options(args.put)));
  out->owned = true;
  out->weight = 1;
  out->dp_unclipped.reset();
  out->bytes_put = out->update.size;
  return Status::ok();
}

// Why a task stopped early: its deadline passed, or it was cancelled. The
// invoker has already resolved the task so (first outcome wins); this status
// says it where the function's own answer is read (logs, the endpoint's post).
Status stopped_status(const faas::TaskContext& ctx, const std::string& what) {
  if (ctx.deadline_at > 0 && wall_seconds() >= ctx.deadline_at) {
    return deadline_exceeded(what + ": the task's deadline passed");
  }
  return cancelled(what + ": the task was cancelled");
}

// Wraps a typed function as a JSON one: the form that crosses processes.
template <typename Args, typename Result>
faas::Function json_function(StatusOr<Result> (*fn)(const Args&, const faas::TaskContext&)) {
  return [fn](const json& j, const faas::TaskContext& ctx) -> StatusOr<json> {
    FLIGHT_ASSIGN_OR_RETURN(Args args, Args::from_json(j));
    FLIGHT_ASSIGN_OR_RETURN(Result result, fn(args, ctx));
    return result.to_json();
  };
}

// The typed form of a function: the in-process message as is (a message of
// another type goes through its JSON).
template <typename Args, typename Result>
faas::TypedFunction typed_function(StatusOr<Result> (*fn)(const Args&, const faas::TaskContext&)) {
  return [fn](const faas::Message& m, const faas::TaskContext& ctx) -> StatusOr<faas::MessagePtr> {
    StatusOr<Result> out = internal_error("not run");
    if (auto* typed = dynamic_cast<const faas::TypedMessage<Args>*>(&m)) {
      out = fn(typed->value(), ctx);
    } else {
      FLIGHT_ASSIGN_OR_RETURN(Args args, Args::from_json(m.to_json()));
      out = fn(args, ctx);
    }
    FLIGHT_RETURN_IF_ERROR(out.status());
    return faas::MessagePtr(std::make_shared<faas::TypedMessage<Result>>(std::move(out).value()));
  };
}

template <typename Args, typename Result>
void add(faas::FunctionRegistry& registry, const char* name,
         StatusOr<Result> (*fn)(const Args&, const faas::TaskContext&)) {
  registry.add_typed(name, json_function(fn), typed_function(fn));
}

}  // namespace

StatusOr<TrainResult> train(const TrainArgs& args, const faas::TaskContext& ctx) {
  // Built only for a message: most tasks never need it.
  auto who = [&] { return "worker " + args.node; };
  if (ctx.cancelled()) return stopped_status(ctx, who() + ": train did not start");
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args.job));
  if (args.worker_index < 0 || args.worker_index >= static_cast<int64_t>(rt->partitions.size())) {
    return invalid_argument("worker " + args.node + ": worker_index " +
                            std::to_string(args.worker_index) + " outside [0, " +
                            std::to_string(rt->partitions.size()) + ")");
  }
  const auto& indices = rt->partitions[static_cast<size_t>(args.worker_index)];
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(args.put.connector));

  TrainResult out;
  out.n_samples = static_cast<int64_t>(indices.size());
  out.weight = rt->strategy->worker_weight(out.n_samples);
  out.bytes_fetched = args.model.size;
  if (rt->job.debug == DebugMode::kDispatch) {
    // Control plane only: the update is the model it was given.
    out.update = args.model;
    out.owned = false;
    out.bytes_fetched = 0;
    return out;
  }
  FLIGHT_ASSIGN_OR_RETURN(ParamSet global, store->get(args.model));
  if (rt->job.debug == DebugMode::kMoveData) {
    // No training, but the bytes of a trained round: the worker's own copy,
    // distinct from every other worker's, put through its connector.
    if (args.secure) {
      FLIGHT_RETURN_IF_ERROR(
          put_masked(args, *rt, global, perturbed_copy(global, args.worker_index), *store, &out));
      return out;
    }
    // Produced straight into the put's buffer (debug updates are raw).
    FLIGHT_ASSIGN_OR_RETURN(transport::SealedBytes update,
                            encode_perturbed(global, args.worker_index));
    FLIGHT_ASSIGN_OR_RETURN(out.update,
                            store->put_encoded(std::move(update), put_options(args.put)));
    out.owned = true;
    out.bytes_put = out.update.size;
    return out;
  }
  FLIGHT_ASSIGN_OR_RETURN(learning::Model * model, thread_model(*rt));
  auto hook = rt->strategy->worker_hook();
  FLIGHT_ASSIGN_OR_RETURN(
      auto res, learning::train(*model, global, *rt->data.train, indices, rt->job.train,
                                task_seed(rt->job.seed, args.worker_index, args.round), hook.get(),
                                ctx.cancelled));
  if (res.stopped) {
    return stopped_status(ctx, who() + ": train stopped after " + std::to_string(res.steps) +
                                   " of " + std::to_string(res.planned_steps) + " batches");
  }
  if (args.dp)
    FLIGHT_RETURN_IF_ERROR(apply_worker_dp(args, rt->job.seed, global, &res.state, &out));
  if (sends_deltas(rt->job)) {
    FLIGHT_ASSIGN_OR_RETURN(
        res.state, error_feedback_delta(rt->id, args, rt->job.compression, global, res.state));
  }
  out.loss = res.loss;
  out.accuracy = res.accuracy;
  out.train_seconds = res.seconds;
  if (args.secure) {
    FLIGHT_RETURN_IF_ERROR(put_masked(args, *rt, global, res.state, *store, &out));
    return out;
  }
  FLIGHT_ASSIGN_OR_RETURN(
      out.update,
      store->put(res.state, update_put_options(*rt, args.put, args.worker_index, args.round)));
  out.owned = true;
  out.bytes_put = out.update.size;
  return out;
}

StatusOr<AggregateResult> aggregate(const AggregateArgs& args, const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args.job));
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(args.put.connector));
  // An aggregator's rounding stream: its key (never a worker's index).
  const transport::PutOptions partial_put =
      update_put_options(*rt, args.put, aggregator_key(args.node), args.round);
  // compression.aggregator_fraction: the partial is top-k'd with the
  // aggregator's own error feedback before it is put.
  PartialHook hook;
  if (sends_deltas(rt->job) && rt->job.aggregator_fraction > 0) {
    hook = [&args, &rt](aggregators::Weighted* partial) {
      return error_feedback_partial(rt->id, args, rt->job.aggregator_fraction, partial);
    };
  }
  if (args.stream) return fold_stream(args, *rt->strategy, *store, partial_put, hook);
  if (args.children.empty()) {
    return invalid_argument("aggregator " + args.node + ": no child updates to aggregate");
  }

  // The whole fold in one task, in list order (the drivers sort the
  // children), fetching a few children ahead of the fold.
  AggregateResult out;
  constexpr size_t kFetchAhead = 3;
  ChildFold fold(args.masked ? masked_sum() : rt->strategy->begin(), *store, args.children.size(),
                 kFetchAhead);
  std::vector<ChildUpdate> children = args.children;
  for (size_t i = 0; i < children.size(); ++i) {
    out.bytes_fetched += children[i].update.size;
    children[i].index = static_cast<int64_t>(i);
    children[i].base.reset();  // bases are folded below
  }
  FLIGHT_RETURN_IF_ERROR(fold.add(std::move(children)).with_context("aggregator " + args.node));
  out.count = fold.count();
  FLIGHT_ASSIGN_OR_RETURN(auto result, fold.finalize());
  if (hook) FLIGHT_RETURN_IF_ERROR(hook(&result));
  FLIGHT_ASSIGN_OR_RETURN(out.update, store->put(result.params, partial_put));
  out.owned = true;
  out.weight = result.weight;
  out.bytes_put = out.update.size;
  if (args.children[0].base) FLIGHT_RETURN_IF_ERROR(fold_bases(args, *rt, *store, &out));
  return out;
}

StatusOr<EvaluateResult> evaluate(const EvaluateArgs& args, const faas::TaskContext& ctx) {
  (void)ctx;
  FLIGHT_ASSIGN_OR_RETURN(auto rt, job_runtime(args.job));
  FLIGHT_ASSIGN_OR_RETURN(transport::Store * store, store_for(args.model.connector));
  FLIGHT_ASSIGN_OR_RETURN(ParamSet params, store->get(args.model));
  const learning::Dataset& test = *rt->data.test;
  const int64_t begin = std::clamp<int64_t>(args.begin, 0, test.size());
  const int64_t end = std::clamp<int64_t>(args.end.value_or(test.size()), begin, test.size());
  learning::Dataset shard;
  shard.images = test.images.narrow(0, begin, end - begin);
  shard.labels = test.labels.narrow(0, begin, end - begin);
  shard.num_classes = test.num_classes;
  FLIGHT_ASSIGN_OR_RETURN(learning::Model * model, thread_model(*rt));
  FLIGHT_ASSIGN_OR_RETURN(auto res, learning::evaluate(*model, params, shard, args.batch_size));
  EvaluateResult out;
  out.loss = res.loss;
  out.accuracy = res.accuracy;
  out.n = res.n;
  return out;
}

void register_functions(faas::FunctionRegistry& registry) {
  add(registry, "train", &train);
  add(registry, "aggregate", &aggregate);
  add(registry, "evaluate", &evaluate);
  add(registry, "secagg_advertise", &secagg_advertise);
  add(registry, "secagg_share", &secagg_share);
  add(registry, "secagg_reveal", &secagg_reveal);
}

}  // namespace flight::engine
