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
  std::unique_ptr<SimulatedDevices> d(new SimulatedDevices(config, ctx.workers, ctx.worker_index));
  const size_t n = ctx.workers.size();
  d->speed_.assign(n, 1.0);
  d->planned_.assign(n, 0.0);
  d->stats_.assign(n, Slot());
  std::mt19937_64 speed_rng(task_seed(config.seed, -1, -1));
  std::lognormal_distribution<double> spread(0.0, config.heterogeneity.speed_sigma);
  // Topology order (the order the speeds were always drawn in).
  for (const auto& node : ctx.topology->nodes()) {
    if (!node.is_worker()) continue;
    const double s = node.speed * (config.heterogeneity.speed_sigma > 0 ? spread(speed_rng) : 1.0);
    d->speed_[d->index(node.id)] = s;
    d->max_speed_ = std::max(d->max_speed_, s);
  }
  FLIGHT_ASSIGN_OR_RETURN(
      auto parts, learning::worker_partitions(ctx.data, ctx.workers.size(), config.data.partition,
                                              config.seed));
  for (size_t i = 0; i < n; ++i) {
    double samples = static_cast<double>(parts[i].size() * config.train.epochs);
    if (config.train.max_steps > 0) {
      samples =
          std::min(samples, static_cast<double>(config.train.max_steps * config.train.batch_size));
    }
    d->planned_[i] = std::max(samples, 1.0) / (d->speed_[i] * config.virtual_sample_rate);
  }
  return d;
}

double SimulatedDevices::slowdown(size_t worker) const {
  const double s = speed_.at(worker);
  return s <= 0 ? 0.0 : max_speed_ / s - 1.0;
}

bool SimulatedDevices::drops(size_t worker, int64_t task) const {
  if (config_.heterogeneity.dropout <= 0) return false;
  const uint64_t h = task_seed(config_.seed ^ 0xd509u, static_cast<int64_t>(worker), task);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < config_.heterogeneity.dropout;
}

double SimulatedDevices::busy(size_t worker, double train_seconds) const {
  return config_.clock == Clock::kVirtual ? planned(worker)
                                          : train_seconds * (1 + slowdown(worker));
}

void SimulatedDevices::count_task(size_t worker, double busy_s, bool dropped, bool failed) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  Slot& slot = stats_.at(worker);
  slot.seen = true;
  WorkerStats& w = slot.stats;
  w.tasks++;
  w.busy_s += busy_s;
  if (dropped) w.dropped++;
  if (failed) w.failed++;
}

void SimulatedDevices::add_busy(const std::string& worker, double busy_s) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  Slot& slot = stats_.at(index(worker));
  slot.seen = true;
  slot.stats.busy_s += busy_s;
}

std::vector<size_t> SimulatedDevices::seen_by_id() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < stats_.size(); ++i) {
    if (stats_[i].seen) out.push_back(i);
  }
  std::sort(out.begin(), out.end(),
            [this](size_t a, size_t b) { return workers_[a] < workers_[b]; });
  return out;
}

nlohmann::json SimulatedDevices::stats_json() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  nlohmann::json j = nlohmann::json::object();
  for (size_t i : seen_by_id()) {
    const WorkerStats& w = stats_[i].stats;
    j[workers_[i]] = {
        {"tasks", w.tasks}, {"dropped", w.dropped}, {"failed", w.failed}, {"busy_s", w.busy_s}};
  }
  return j;
}

Status SimulatedDevices::restore_stats(const nlohmann::json& j) {
  std::vector<Slot> stats(stats_.size());
  try {
    for (const auto& [id, w] : j.items()) {
      auto it = worker_index_.find(id);
      if (it == worker_index_.end()) {
        return data_loss("worker statistics: '" + id + "' is not a worker of this topology");
      }
      Slot& slot = stats[static_cast<size_t>(it->second)];
      slot.seen = true;
      slot.stats = {w.at("tasks").get<int64_t>(), w.at("dropped").get<int64_t>(),
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
  for (size_t i : seen_by_id()) {
    const WorkerStats& w = stats_[i].stats;
    const double idle = makespan_s > 0 ? std::max(0.0, 1.0 - w.busy_s / makespan_s) : 0.0;
    csv.write(
        {workers_[i], csv_number(speed_[i]), std::to_string(w.tasks), std::to_string(w.dropped),
         std::to_string(w.failed), csv_number(w.busy_s), csv_number(idle)},
        /*flush=*/false);
  }
  csv.flush();
  return Status::ok();
}

}  // namespace flight::engine
