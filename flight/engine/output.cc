#include "flight/engine/output.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flight/base/logging.h"
#include "flight/engine/checkpoint.h"
#include "flight/engine/devices.h"
#include "flight/engine/run_context.h"
#include "flight/engine/yaml_json.h"

namespace flight::engine {

namespace fs = std::filesystem;
using nlohmann::json;

Status RunOutput::open() {
  std::error_code ec;
  if (ctx_.options.resume) {
    FLIGHT_RETURN_IF_ERROR(resume());
  } else {
    // A fresh run owns its outputs: earlier rows and checkpoints would mix
    // with this run's and make --resume continue the wrong run.
    for (const char* f : {"rounds.csv", "tasks.csv", "summary.json", "model.pt", "accuracy.svg"}) {
      fs::remove(fs::path(ctx_.out_dir) / f, ec);
    }
    fs::remove_all(fs::path(ctx_.out_dir) / "checkpoints", ec);
  }
  {
    std::ofstream cfg(ctx_.out_dir + "/config.yaml", std::ios::trunc);
    cfg << "# Resolved configuration of this run (every default filled in).\n"
        << json_to_yaml(ctx_.config.to_json());
  }
  FLIGHT_RETURN_IF_ERROR(rounds_csv_.open(ctx_.out_dir + "/rounds.csv", round_header(ctx_.tiers)));
  return tasks_csv_.open(ctx_.out_dir + "/tasks.csv", task_header());
}

Status RunOutput::resume() {
  const std::string& dir = ctx_.out_dir;
  FLIGHT_ASSIGN_OR_RETURN(auto ckpt, load_latest_checkpoint(dir));
  if (!ckpt)
    return not_found("--resume: no checkpoint in '" + dir + "/checkpoints' to resume from");
  FLIGHT_RETURN_IF_ERROR(ctx_.global.check_compatible(ckpt->global)
                             .with_context("--resume: checkpoint model does not match config"));
  ctx_.global = std::move(ckpt->global);
  FLIGHT_RETURN_IF_ERROR(ctx_.strategy->load_state(ckpt->strategy_state, ckpt->strategy_tensors));
  std::istringstream rng_in(ckpt->rng_state);
  rng_in >> ctx_.rng;
  if (!rng_in) return data_loss("--resume: checkpoint RNG state is unreadable");
  ctx_.first_round = ckpt->round + 1;
  ctx_.elapsed_offset = ckpt->elapsed_s;
  // Rows written after the checkpoint belong to rounds that will run again.
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(dir + "/rounds.csv", ckpt->round));
  FLIGHT_RETURN_IF_ERROR(truncate_csv_rounds(dir + "/tasks.csv", ckpt->round));
  auto rows = read_rounds_csv(dir + "/rounds.csv");
  if (rows.is_ok()) rows_ = std::move(rows).value();
  spdlog::info("resuming {} after round {}", dir, ckpt->round);
  return Status::ok();
}

Status RunOutput::open_updates() {
  const std::string path = ctx_.out_dir + "/updates.csv";
  std::error_code ec;
  fs::remove(path, ec);
  return updates_csv_.open(path, {"update", "time_s", "from", "count", "weight", "base_version",
                                  "merged_into", "staleness", "applied", "merge_s"});
}

void RunOutput::add_round(const RoundRow& row) {
  rounds_csv_.write(round_cells(row, ctx_.tiers));
  rows_.push_back(row);
}

void RunOutput::add_tasks(const std::vector<TaskRow>& rows) {
  for (const auto& t : rows) tasks_csv_.write(task_cells(t), /*flush=*/false);
  tasks_csv_.flush();
}

void RunOutput::add_update(const UpdateRow& u) {
  updates_csv_.write({std::to_string(u.update), csv_number(u.time_s), u.from,
                      std::to_string(u.count), csv_number(u.weight), csv_number(u.base_version),
                      std::to_string(u.merged_into), std::to_string(u.staleness),
                      u.applied ? "1" : "0", csv_number(u.merge_s)});
}

Status RunOutput::checkpoint(int64_t round) {
  Checkpoint c;
  c.round = round;
  c.global = ctx_.global;
  c.strategy_state = ctx_.strategy->state_json();
  c.strategy_tensors = ctx_.strategy->state_tensors();
  std::ostringstream rng;
  rng << ctx_.rng;
  c.rng_state = rng.str();
  c.elapsed_s = ctx_.now();
  return save_checkpoint(ctx_.out_dir, c);
}

Status RunOutput::finish(RunSummary* summary, const SimulatedDevices& devices, double makespan_s) {
  const std::string& dir = ctx_.out_dir;
  summary->output_dir = dir;
  summary->final_model = ctx_.global;
  if (ctx_.config.output.save_model) {
    FLIGHT_RETURN_IF_ERROR(ctx_.model->load_state(ctx_.global));
    summary->model_path = dir + "/model.pt";
    FLIGHT_RETURN_IF_ERROR(ctx_.model->save(summary->model_path));
  }
  FLIGHT_RETURN_IF_ERROR(write_accuracy_svg(dir + "/accuracy.svg", rows_, ctx_.config.name));
  json s = summary->to_json();
  s["name"] = ctx_.config.name;
  s["topology"] = {
      {"nodes", ctx_.topology->size()}, {"workers", ctx_.workers.size()}, {"tiers", ctx_.tiers}};
  s["control"] = to_string(ctx_.config.control.kind);
  s["model"] = ctx_.config.model.to_json();
  s["strategy"] = ctx_.config.strategy.name;
  const std::string tmp = dir + "/summary.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << s.dump(2) << "\n";
    if (!out) return unavailable("cannot write '" + tmp + "'");
  }
  fs::rename(tmp, dir + "/summary.json");
  return devices.write_csv(dir + "/workers.csv", makespan_s);
}

}  // namespace flight::engine
