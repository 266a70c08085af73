#include "flight/faas/invoker.h"

#include "flight/base/logging.h"
#include "flight/base/options.h"
#include "flight/base/strings.h"
#include "flight/base/time.h"

namespace flight::faas {

namespace {
constexpr const char* kStateNames[] = {"pending", "running",   "succeeded",
                                       "failed",  "cancelled", "deadline_exceeded"};
}  // namespace

const char* task_state_name(TaskState state) { return kStateNames[static_cast<int>(state)]; }

StatusOr<TaskState> parse_task_state(std::string_view name) {
  std::vector<std::string> known;
  for (int i = 0; i < 6; ++i) {
    if (name == kStateNames[i]) return static_cast<TaskState>(i);
    known.emplace_back(kStateNames[i]);
  }
  return invalid_argument("unknown task state '" + std::string(name) + "'" +
                          did_you_mean(name, known) + " (known: " + join(known, ", ") + ")");
}

bool is_terminal(TaskState state) {
  return state != TaskState::kPending && state != TaskState::kRunning;
}

const char* const kFinalStates = "succeeded, failed, cancelled, deadline_exceeded";

TaskState final_state(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return TaskState::kSucceeded;
    case StatusCode::kCancelled:
      return TaskState::kCancelled;
    case StatusCode::kDeadlineExceeded:
      return TaskState::kDeadlineExceeded;
    default:
      return TaskState::kFailed;
  }
}

nlohmann::json TaskSpec::json_args() const {
  if (message && (args.is_null() || (args.is_object() && args.empty()))) {
    return message->to_json();
  }
  return args;
}

nlohmann::json TaskSpec::to_json() const {
  return {{"endpoint", endpoint},
          {"function", function},
          {"args", json_args()},
          {"deadline_s", deadline_s}};
}

StatusOr<TaskSpec> TaskSpec::from_json(const nlohmann::json& j, const std::string& where) {
  OptionReader reader(j, where);
  TaskSpec spec;
  reader.required("endpoint", &spec.endpoint)
      .required("function", &spec.function)
      .optional("args", &spec.args)
      .at_least("deadline_s", &spec.deadline_s, 0.0)
      .known({"id"});
  if (reader.has("endpoint") && spec.endpoint.empty()) reader.fail("endpoint", "must not be empty");
  if (reader.has("function") && spec.function.empty()) reader.fail("function", "must not be empty");
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  return spec;
}

nlohmann::json TaskResult::to_json() const {
  return {{"id", task_id},
          {"state", task_state_name(state)},
          {"result", result},
          {"error", error},
          {"submitted_at", submitted_at},
          {"started_at", started_at},
          {"finished_at", finished_at}};
}

StatusOr<TaskResult> TaskResult::from_json(const nlohmann::json& j) {
  TaskResult r;
  std::string state;
  OptionReader reader(j, "task result");
  reader.required("id", &r.task_id)
      .required("state", &state)
      .optional("result", &r.result)
      .optional("error", &r.error)
      .optional("submitted_at", &r.submitted_at)
      .optional("started_at", &r.started_at)
      .optional("finished_at", &r.finished_at)
      .ignore_unknown();  // results may carry fields a newer service adds
  FLIGHT_RETURN_IF_ERROR(reader.finish());
  FLIGHT_ASSIGN_OR_RETURN(r.state, parse_task_state(state));
  return r;
}

TaskCompletion::TaskCompletion(std::string id, double submitted_at, ResultCallback on_done,
                               uint64_t tag)
    : TaskCompletion(
          std::move(id), submitted_at,
          on_done ? std::make_shared<const ResultCallback>(std::move(on_done)) : SharedCallback(),
          tag) {}

TaskCompletion::TaskCompletion(std::string id, double submitted_at, SharedCallback on_done,
                               uint64_t tag)
    : id_(std::move(id)), submitted_at_(submitted_at), tag_(tag), on_done_(std::move(on_done)) {}

std::shared_future<TaskResult> TaskCompletion::future() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!future_.valid()) {
    std::promise<TaskResult> promise;
    future_ = promise.get_future().share();
    if (result_) {
      promise.set_value(std::move(*result_));
      result_.reset();
    } else {
      promise_.emplace(std::move(promise));
    }
  }
  return future_;
}

bool TaskCompletion::complete(TaskResult result) {
  if (done_.exchange(true, std::memory_order_acq_rel)) return false;
  result.task_id = id_;
  result.tag = tag_;
  if (result.submitted_at == 0) result.submitted_at = submitted_at_;
  if (result.finished_at == 0) result.finished_at = wall_seconds();
  if (on_done_) {
    // Nothing may escape into an invoker thread; the task's outcome stands.
    try {
      (*on_done_)(result);
    } catch (const std::exception& e) {
      spdlog::error("task {}: result callback threw: {}", id_, e.what());
    } catch (...) {
      spdlog::error("task {}: result callback threw a non-standard exception", id_);
    }
    on_done_ = nullptr;  // release captured state early
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (promise_) {
    promise_->set_value(std::move(result));
    promise_.reset();
  } else {
    result_ = std::move(result);
  }
  return true;
}

const std::string& TaskHandle::id() const {
  FLIGHT_CHECK(completion_ != nullptr, "id() of an empty TaskHandle");
  return completion_->id();
}

std::shared_future<TaskResult> TaskHandle::future() const {
  FLIGHT_CHECK(completion_ != nullptr, "future() of an empty TaskHandle");
  return completion_->future();
}

TaskResult TaskHandle::wait() const { return future().get(); }

Invoker::~Invoker() = default;

Status Invoker::close() { return Status::ok(); }

TaskResult make_terminal(TaskState state, std::string error, double submitted_at) {
  TaskResult r;
  r.state = state;
  r.error = std::move(error);
  r.submitted_at = submitted_at;
  r.finished_at = wall_seconds();
  return r;
}

}  // namespace flight::faas
