#include "flight/faas/local_invoker.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/time.h"
#include "flight/faas/deadline_timer.h"

namespace flight::faas {

Status LocalInvokerOptions::validate() const {
  if (threads < 1) return invalid_argument("local invoker: threads must be >= 1");
  if (max_queue < 1) return invalid_argument("local invoker: max_queue must be >= 1");
  return Status::ok();
}

StatusOr<LocalInvokerOptions> LocalInvokerOptions::from_json(const nlohmann::json& j) {
  const std::string where = "local invoker options";
  OptionReader reader(j, where);
  LocalInvokerOptions o;
  reader.optional("threads", &o.threads);
  reader.optional("max_queue", &o.max_queue);
  reader.optional("block_when_full", &o.block_when_full);
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  FLIGHT_RETURN_IF_ERROR(o.validate());
  return o;
}

nlohmann::json LocalInvokerOptions::to_json() const {
  return {{"threads", threads}, {"max_queue", max_queue}, {"block_when_full", block_when_full}};
}

namespace {

// The invoker whose thread this is (pool or timer), so submit() knows not to
// block on its own queue.
thread_local const void* t_invoker_thread_of = nullptr;

class LocalInvoker final : public Invoker {
 public:
  LocalInvoker(const LocalInvokerOptions& options, FunctionRegistry& functions)
      : options_(options), functions_(functions), timer_([this] { t_invoker_thread_of = this; }) {
    FLIGHT_CHECK(options_.validate().is_ok(), options_.validate().message());
    for (size_t i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { work(); });
  }

  ~LocalInvoker() override { (void)close(); }

  TaskHandle submit(TaskSpec spec, ResultCallback on_done) override {
    std::vector<TaskSpec> one;
    one.push_back(std::move(spec));
    return submit_batch(std::move(one), std::move(on_done)).front();
  }

  // One lock for the whole batch (not one per task), so a 10,000-task round
  // does not contend with the pool threads 10,000 times; one callback shared
  // by the batch's tasks.
  std::vector<TaskHandle> submit_batch(std::vector<TaskSpec> specs,
                                       ResultCallback on_done) override {
    std::vector<TaskHandle> out;
    std::vector<Job> jobs;
    out.reserve(specs.size());
    jobs.reserve(specs.size());
    const double now = wall_seconds();
    const SharedCallback shared =
        on_done ? std::make_shared<const ResultCallback>(std::move(on_done)) : nullptr;
    const uint64_t first = next_serial_.fetch_add(specs.size(), std::memory_order_relaxed);
    for (size_t i = 0; i < specs.size(); ++i) {
      const uint64_t serial = first + i;
      jobs.push_back(
          Job{std::make_shared<TaskCompletion>(task_id(serial), now, shared, specs[i].tag), serial,
              std::move(specs[i])});
      out.emplace_back(jobs.back().completion);
    }
    enqueue(std::move(jobs));
    return out;
  }

  void cancel(const std::string& task_id) override {
    const std::optional<uint64_t> serial = serial_of(task_id);
    if (!serial) return;
    std::shared_ptr<TaskCompletion> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(*serial);
      if (it == live_.end()) return;
      c = it->second;
    }
    c->request_cancel();
    c->complete(make_terminal(TaskState::kCancelled, "cancelled by the caller"));
  }

  Status close() override {
    FLIGHT_CHECK(t_invoker_thread_of != this, "close() called from an invoker thread");
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (closed_) return Status::ok();
      closing_ = true;
      not_full_.notify_all();
      idle_.wait(lock, [this] { return queued_ == 0 && running_ == 0; });
      closed_ = true;
    }
    not_empty_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    timer_.stop();
    return Status::ok();
  }

 private:
  struct Job {
    std::shared_ptr<TaskCompletion> completion;
    uint64_t serial = 0;  // its id's number (live_)
    TaskSpec spec;
  };

  // Task ids are "task-" and 10 hex digits of a serial number that starts at
  // a random point: unique within the invoker (live_ is keyed by the number),
  // distinct between runs, and short enough to need no heap allocation.
  static constexpr size_t kIdDigits = 10;
  static constexpr uint64_t kSerialMask = (uint64_t{1} << (4 * kIdDigits)) - 1;
  static std::string task_id(uint64_t serial) {
    static const char kHex[] = "0123456789abcdef";
    std::string id = "task-";
    id.resize(5 + kIdDigits);
    serial &= kSerialMask;
    for (size_t i = 0; i < kIdDigits; ++i) {
      id[5 + kIdDigits - 1 - i] = kHex[serial & 0xf];
      serial >>= 4;
    }
    return id;
  }
  static std::optional<uint64_t> serial_of(const std::string& id) {
    if (id.size() != 5 + kIdDigits || id.compare(0, 5, "task-") != 0) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 5; i < id.size(); ++i) {
      const char c = id[i];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v << 4 | static_cast<uint64_t>(d);
    }
    return v;
  }

  void enqueue(std::vector<Job> jobs) {
    const bool from_pool = t_invoker_thread_of == this;
    std::vector<std::pair<std::weak_ptr<TaskCompletion>, double>> deadlines;
    std::vector<std::shared_ptr<TaskCompletion>> rejected;
    bool was_closing = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (auto& job : jobs) {
        if (!from_pool) {
          if (options_.block_when_full) {
            not_full_.wait(lock, [this] { return closing_ || queued_ < options_.max_queue; });
          }
          if (closing_ || queued_ >= options_.max_queue) {
            was_closing = closing_;
            rejected.push_back(std::move(job.completion));
            continue;
          }
        }
        if (job.spec.deadline_s > 0) deadlines.emplace_back(job.completion, job.spec.deadline_s);
        live_.emplace(job.serial & kSerialMask, job.completion);
        queues_[job.spec.priority].push_back(std::move(job));
        ++queued_;
        // A pool thread sleeps only on an empty queue, so waking one per
        // task up to `threads` queued is enough, and a big batch does not
        // make a futex call per task.
        if (queued_ <= options_.threads) not_empty_.notify_one();
      }
    }
    for (auto& c : rejected) {
      c->complete(make_terminal(TaskState::kFailed, was_closing
                                                        ? "local invoker is closed"
                                                        : "local invoker queue full (" +
                                                              std::to_string(options_.max_queue) +
                                                              " tasks waiting); retry later"));
    }
    for (auto& [weak, deadline_s] : deadlines) {
      timer_.schedule_after(deadline_s, [weak = weak, deadline_s = deadline_s] {
        if (auto c = weak.lock()) {
          c->request_cancel();
          c->complete(make_terminal(TaskState::kDeadlineExceeded,
                                    "deadline of " + std::to_string(deadline_s) + " s exceeded"));
        }
      });
    }
  }

  // One lock per task: the bookkeeping of the task just run and the pop of
  // the next share a critical section; what the finished task held is
  // released outside it.
  void work() {
    t_invoker_thread_of = this;
    std::optional<uint64_t> finished;  // serial of the job this thread just ran
    while (true) {
      std::optional<Job> job;  // not default-made: a TaskSpec's args would allocate
      std::shared_ptr<TaskCompletion> release;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (finished) {
          auto it = live_.find(*finished);
          if (it != live_.end()) {
            release = std::move(it->second);
            live_.erase(it);
          }
          finished.reset();
          --running_;
          if (running_ == 0 && queued_ == 0) idle_.notify_all();
        }
        not_empty_.wait(lock, [this] { return closed_ || queued_ > 0; });
        if (queued_ == 0) return;  // closed_ and drained
        job.emplace(pop_locked());
        ++running_;
      }
      not_full_.notify_one();
      run(*job);
      finished = job->serial & kSerialMask;
    }
  }

  // The oldest task of the highest priority queued. Called with mu_ held and
  // queued_ > 0.
  Job pop_locked() {
    auto it = queues_.begin();
    while (it->second.empty()) ++it;
    Job job = std::move(it->second.front());
    it->second.pop_front();
    --queued_;
    return job;
  }

  void run(Job& job) {
    auto& c = job.completion;
    if (c->done()) return;  // cancelled or past its deadline while queued
    TaskContext ctx;
    ctx.task_id = c->id();
    ctx.endpoint = job.spec.endpoint;
    ctx.cancelled = [raw = c.get()] { return raw->cancel_requested(); };
    if (job.spec.deadline_s > 0) ctx.deadline_at = c->submitted_at() + job.spec.deadline_s;
    TaskResult r;
    r.started_at = wall_seconds();
    Status st;
    TypedFunction typed =
        job.spec.message ? functions_.find_typed(job.spec.function) : TypedFunction();
    if (typed) {
      // In-process and typed on both sides: the message goes as is, no JSON.
      StatusOr<MessagePtr> out = run_typed(typed, job.spec.function, *job.spec.message, ctx);
      if (out.is_ok()) r.message = std::move(out).value();
      st = out.status();
    } else {
      nlohmann::json from_message;
      if (job.spec.message && job.spec.args.empty()) from_message = job.spec.json_args();
      const nlohmann::json& args = from_message.is_null() ? job.spec.args : from_message;
      StatusOr<nlohmann::json> out = run_function(functions_, job.spec.function, args, ctx);
      if (out.is_ok()) r.result = std::move(out).value();
      st = out.status();
    }
    r.finished_at = wall_seconds();
    r.state = final_state(st);
    if (!st.is_ok()) r.error = st.message();
    c->complete(std::move(r));  // no lock held: the callback may submit
  }

  // As run_function, for a typed function: errors and exceptions come back as
  // an error Status.
  static StatusOr<MessagePtr> run_typed(const TypedFunction& f, const std::string& name,
                                        const Message& args, const TaskContext& ctx) {
    try {
      return f(args, ctx);
    } catch (const std::exception& e) {
      return internal_error(name + " threw: " + e.what());
    } catch (...) {
      return internal_error(name + " threw a non-standard exception");
    }
  }

  const LocalInvokerOptions options_;
  FunctionRegistry& functions_;

  std::mutex mu_;
  std::condition_variable not_empty_, not_full_, idle_;
  // Tasks waiting to start, by priority (highest first; a priority's deque
  // stays once made: a run uses a few), and how many in all.
  std::map<int, std::deque<Job>, std::greater<int>> queues_;
  size_t queued_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<TaskCompletion>> live_;  // by serial
  std::atomic<uint64_t> next_serial_{std::random_device()() * uint64_t{4096}};
  size_t running_ = 0;
  bool closing_ = false;  // no more submissions from outside the pool
  bool closed_ = false;   // drained; workers exit
  std::vector<std::thread> workers_;
  DeadlineTimer timer_;
};

}  // namespace

std::unique_ptr<Invoker> make_local_invoker(const LocalInvokerOptions& options,
                                            FunctionRegistry& functions) {
  return std::make_unique<LocalInvoker>(options, functions);
}

}  // namespace flight::faas
