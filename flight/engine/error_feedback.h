// Top-k sparsification with error feedback (`compression: {encoding: topk,
// topk_fraction: f}`; Stich et al. 2018, Karimireddy et al. 2019).
//
// With topk a worker sends its DELTA, not its model: from its residual r
// (what earlier rounds did not send), e = (trained - global) + r, it sends
// topk(e) (the ceil(f n) largest |e| of each float32 tensor) and keeps
// r = e - topk(e). The split is exact: sent + r equals e bit for bit, so
// every coordinate is eventually sent. The sent delta and the aggregators'
// partial means of deltas travel in the lossless `sparse_varint` encoding
// (update_encoding.h: the nonzeros, or raw float32 where that is smaller);
// partials are never top-k'd again, so hierarchical equals flat. The
// coordinator's fold is the weighted mean delta; apply_mean_delta() turns it
// into global + mean delta, and the strategy's server step runs on that as on
// a mean of models (fedavg: the next model; fedavgm/fedadam/...: the
// pseudo-gradient is the mean delta). Non-float32 tensors travel raw (integer
// buffers as trained, combined by maximum as everywhere).
//
// Where the residual lives: in the process that trains the worker (embedded:
// the coordinator's process; REST: the `flight endpoint` process that ran the
// worker's last task), in a process-wide table keyed by (job, worker). Each
// entry keeps the residual after the worker's last send and the one before
// it, with their rounds. The coordinator's ledger (DeltaLedger) records the
// round of each worker's last DELIVERED update (folded into an applied round)
// and tells the worker in TrainArgs::ef_round; the worker continues from
//   - the residual after its last send, when that send is the delivered one;
//   - the residual before it, when that send was not delivered (a retried
//     round attempt, a result dropped as late or as simulated dropout, a run
//     resumed from a checkpoint taken before it, a task delivered twice):
//     the run continues as if the undelivered send never happened;
//   - zero otherwise (the worker moved to a process that never trained it, or
//     that process restarted): its residual is lost, which costs at most the
//     mass of one residual and is logged as a warning; the run goes on but is
//     no longer bit-identical to an undisturbed one.
// Checkpoints hold the ledger and, embedded (where the table is in the
// coordinator's process), the residual each worker will continue from, so a
// killed embedded run resumes with the uninterrupted run's model bit for bit.
// Over REST the residuals stay in the endpoint processes: a resume whose
// endpoints survived continues exactly (by the rules above); endpoints that
// restarted start their workers from zero residuals.
//
// Memory: up to two model-sized residuals per worker that trained in this
// process (error feedback is per-worker state by nature).
//
// Thread safety: the table functions may be called concurrently; DeltaLedger
// is used by the driving thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/engine/job.h"
#include "flight/engine/messages.h"
#include "flight/params/param_set.h"
#include "transport/update_encoding.h"

namespace flight::engine {

// Whether the job's workers send error-feedback deltas (topk; debug jobs do
// not train and send nothing of the kind).
bool sends_deltas(const Job& job);

// The encoding workers' and aggregators' updates are put with: the run's
// compression, or for topk the lossless sparse_varint encoding (the sent delta is
// already top-k; the partial sums must not be truncated again).
transport::EncodeOptions update_encoding(const Job& job);

// Worker side: the delta to send (dense tensors, zeros where nothing is
// sent) for worker args.worker_index of the job `job_key` after training
// `trained` from `global`, updating the process's residual table.
StatusOr<ParamSet> error_feedback_delta(const std::string& job_key, const TrainArgs& args,
                                        const transport::EncodeOptions& topk,
                                        const ParamSet& global, const ParamSet& trained);

// Aggregator side (compression.aggregator_fraction > 0): the partial mean of
// weight W becomes topk(W * mean + r) / W with the aggregator's own residual
// r (in units of weighted sums, so what a parent folds with weight W adds up
// exactly), under the same table and rules as a worker's, keyed by
// aggregator_key(args.node). Hierarchical is then no longer equal to flat:
// each aggregator defers part of its subtree's sum to later rounds.
Status error_feedback_partial(const std::string& job_key, const AggregateArgs& args,
                              double fraction, aggregators::Weighted* partial);

// The table and ledger key of an aggregator: a hash of its node id, negative
// so it never meets a worker's index (the same in every process).
int64_t aggregator_key(const std::string& node);

// The residual worker `worker` of `job_key` continues from after round
// `delivered` (its ledger entry), or nullptr-equivalent empty ParamSet when
// the table has none for it: for tests and checkpoints.
ParamSet residual_for(const std::string& job_key, int64_t worker, int64_t delivered);

// Coordinator side: the round of each worker's (and, with aggregator_fraction,
// each aggregator's: aggregator_key) last delivered update.
class DeltaLedger {
 public:
  // 0 when the worker never delivered one.
  int64_t delivered(int64_t worker) const;
  void commit(int64_t worker, int64_t round) { rounds_[worker] = round; }
  const std::map<int64_t, int64_t>& rounds() const { return rounds_; }

  // Checkpoint: {"delivered": [[worker, round], ...]} and, when `job_key` is
  // non-empty (embedded runs, where the table is in this process), the
  // residuals the workers continue from, packed into one ParamSet (names
  // "<worker>/<tensor>").
  nlohmann::json state() const;
  ParamSet residuals(const std::string& job_key) const;
  // Restores the ledger and, with a non-empty `job_key`, puts `residuals`
  // back into this process's table (replacing the job's entries).
  Status load_state(const nlohmann::json& state, const std::string& job_key,
                    const ParamSet& residuals);

 private:
  std::map<int64_t, int64_t> rounds_;
};

// The root's weighted mean delta becomes global + mean delta (in place).
Status apply_mean_delta(const ParamSet& global, aggregators::Weighted* aggregate);

}  // namespace flight::engine
