#include "flight/engine/devices.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "flight/engine/job.h"
#include "flight/engine/metrics.h"
#include "flight/engine/run_context.h"

namespace flight::engine {

StatusOr<std::unique_ptr<SimulatedDevices>> SimulatedDevices::create(const RunContext& ctx) {
  const ExperimentConfig& config = ctx.config;
  std::unique_ptr<SimulatedDevices> d(new SimulatedDevices(config, ctx.worker_index));
  std::mt19937_64 speed_rng(task_seed(config.seed, -1, -1));
  std::lognormal_distribution<double> spread(0.0, config.heterogeneity.speed_sigma);
  for (const auto& n : ctx.topology->nodes()) {
    if (!n.is_worker()) continue;
    const double s = n.speed * (config.heterogeneity.speed_sigma > 0 ? spread(speed_rng) : 1.0);
    d->speed_[n.id] = s;
    d->max_speed_ = std::max(d->max_speed_, s);
  }
  FLIGHT_ASSIGN_OR_RETURN(
      auto parts, learning::worker_partitions(ctx.data, ctx.workers.size(), config.data.partition,
                                              config.seed));
  for (size_t i = 0; i < ctx.workers.size(); ++i) {
    double samples = static_cast<double>(parts[i].size() * config.train.epochs);
    if (config.train.max_steps > 0) {
      samples =
          std::min(samples, static_cast<double>(config.train.max_steps * config.train.batch_size));
    }
    const std::string& w = ctx.workers[i];
    d->planned_[w] = std::max(samples, 1.0) / (d->speed_.at(w) * config.virtual_sample_rate);
  }
  return d;
}

double SimulatedDevices::slowdown(const std::string& worker) const {
  auto it = speed_.find(worker);
  return it == speed_.end() || it->second <= 0 ? 0.0 : max_speed_ / it->second - 1.0;
}

bool SimulatedDevices::drops(const std::string& worker, int64_t task) const {
  if (config_.heterogeneity.dropout <= 0) return false;
  const uint64_t h = task_seed(config_.seed ^ 0xd509u, worker_index_.at(worker), task);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < config_.heterogeneity.dropout;
}

double SimulatedDevices::busy(const std::string& worker, double train_seconds) const {
  return config_.clock == Clock::kVirtual ? planned(worker)
                                          : train_seconds * (1 + slowdown(worker));
}

void SimulatedDevices::count_task(const std::string& worker, double busy_s, bool dropped,
                                  bool failed) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  auto& w = stats_[worker];
  w.tasks++;
  w.busy_s += busy_s;
  if (dropped) w.dropped++;
  if (failed) w.failed++;
}

void SimulatedDevices::add_busy(const std::string& worker, double busy_s) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_[worker].busy_s += busy_s;
}

nlohmann::json SimulatedDevices::stats_json() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [id, w] : stats_) {
    j[id] = {
        {"tasks", w.tasks}, {"dropped", w.dropped}, {"failed", w.failed}, {"busy_s", w.busy_s}};
  }
  return j;
}

Status SimulatedDevices::restore_stats(const nlohmann::json& j) {
  std::map<std::string, WorkerStats> stats;
  try {
    for (const auto& [id, w] : j.items()) {
      stats[id] = {w.at("tasks").get<int64_t>(), w.at("dropped").get<int64_t>(),
                   w.at("failed").get<int64_t>(), w.at("busy_s").get<double>()};
    }
  } catch (const nlohmann::json::exception& e) {
    return data_loss(std::string("worker statistics: ") + e.what());
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = std::move(stats);
  return Status::ok();
}

Status SimulatedDevices::write_csv(const std::string& path, double makespan_s) const {
  CsvLog csv;
  std::error_code ec;
  std::filesystem::remove(path, ec);
  FLIGHT_RETURN_IF_ERROR(
      csv.open(path, {"worker", "speed", "tasks", "dropped", "failed", "busy_s", "idle_fraction"}));
  std::lock_guard<std::mutex> lock(stats_mu_);
  for (const auto& [id, w] : stats_) {
    const double idle = makespan_s > 0 ? std::max(0.0, 1.0 - w.busy_s / makespan_s) : 0.0;
    auto it = speed_.find(id);
    csv.write({id, csv_number(it != speed_.end() ? it->second : 1.0), std::to_string(w.tasks),
               std::to_string(w.dropped), std::to_string(w.failed), csv_number(w.busy_s),
               csv_number(idle)});
  }
  return Status::ok();
}

}  // namespace flight::engine
