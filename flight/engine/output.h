// RunOutput: the files of a run directory — config.yaml, rounds.csv,
// tasks.csv, updates.csv (async), workers.csv, summary.json, the final model,
// accuracy.svg and checkpoints — and --resume from the last checkpoint.
//
// Threading: driving thread only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/engine/checkpoint.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"

namespace flight::engine {

struct RunContext;
class SimulatedDevices;

// One row of updates.csv (async): a (possibly partial) update merged by the coordinator.
struct UpdateRow {
  int64_t update = 0;  // 1, 2, ...
  double time_s = 0;
  std::string from;
  int64_t count = 0;  // worker updates inside
  double weight = 0, base_version = 0;
  int64_t merged_into = 0, staleness = 0;
  bool applied = false;
  double merge_s = 0;
};

class RunOutput {
 public:
  explicit RunOutput(RunContext& ctx) : ctx_(ctx) {}

  // Fresh run: removes earlier outputs. --resume: refuses a config that
  // differs from the run's config.yaml (unless RunOptions::allow_changes),
  // restores the global model, strategy state, RNG, first round and elapsed
  // time from the last checkpoint into the context and drops the rows written
  // after it. Then writes config.yaml (RunOptions::config_as_given, or the
  // context's config) and opens rounds.csv and tasks.csv.
  Status open();
  // Async runs: starts updates.csv, or on --resume keeps its first
  // `resumed_updates` rows.
  Status open_updates(int64_t resumed_updates = 0);

  void add_round(const RoundRow& row);
  // One flush per batch, not per row: at 10,000 tasks a round, a write
  // syscall per row costs more than the tasks themselves.
  void add_tasks(const std::vector<TaskRow>& rows);
  void add_update(const UpdateRow& row);
  const std::vector<RoundRow>& rounds() const { return rows_; }

  // Writes the checkpoint of `round` (async: of evaluation `round`) with the
  // context's model, strategy and RNG, plus a driver's own state (`extra`,
  // `params`). RunOptions::crash_after_checkpoints kills the process here.
  Status checkpoint(int64_t round, nlohmann::json extra = nlohmann::json::object(),
                    std::map<std::string, ParamSet> params = {});
  // The checkpoint open() resumed from (its extra and params for the
  // driver), or nullptr on a fresh run.
  const Checkpoint* resumed() const { return resumed_ ? &*resumed_ : nullptr; }
  // The final model, accuracy.svg, summary.json (fills summary's output_dir,
  // final_model and model_path) and workers.csv.
  Status finish(RunSummary* summary, const SimulatedDevices& devices, double makespan_s);

 private:
  Status resume();
  Status check_resume_config() const;

  RunContext& ctx_;
  std::optional<Checkpoint> resumed_;
  int64_t checkpoints_written_ = 0;
  std::vector<RoundRow> rows_;
  CsvLog rounds_csv_, tasks_csv_, updates_csv_;
};

}  // namespace flight::engine
