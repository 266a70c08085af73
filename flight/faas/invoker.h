// The control-plane interface: submit named functions with JSON arguments to
// (virtual or real) endpoints and get futures of their results.
//
// Two implementations share these semantics (and one conformance suite):
//   - make_local_invoker (local_invoker.h): a bounded thread pool in-process.
//   - make_rest_invoker  (rest_invoker.h):  a client of `flight serve`, whose
//     tasks run on `flight endpoint` processes.
//
// Semantics every Invoker keeps:
//   - A task ends in exactly one terminal state; the first outcome wins
//     (result, error, deadline, cancellation). Later outcomes are discarded.
//   - A function that returns an error Status or throws ends kFailed with the
//     message in TaskResult::error.
//   - deadline_s > 0: the future resolves kDeadlineExceeded at the deadline
//     even if the function is still running (it sees TaskContext::cancelled()
//     become true; a late result is discarded).
//   - cancel(id): the future resolves kCancelled at once (if not already
//     done); a running function sees cancelled() become true.
//   - The callback runs once per task, before the future is fulfilled (so a
//     future waiter sees the callback's effects). It runs on an invoker thread
//     (or on the thread calling cancel(), or on the submitting thread when the
//     submission itself is rejected). Callbacks may submit new tasks; they must
//     not block for long and must not call close().
//
// Thread safety: all Invoker methods may be called concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"

namespace flight::faas {

// A task's arguments or result in typed, in-process form. An invoker that runs
// the function in this process (LocalInvoker) hands it to a function
// registered with a typed form (FunctionRegistry::add_typed) as is: no JSON is
// built or parsed. to_json() is its wire form, used where the task crosses a
// process and for functions that only have a JSON form.
class Message {
 public:
  virtual ~Message() = default;
  virtual nlohmann::json to_json() const = 0;
};
using MessagePtr = std::shared_ptr<const Message>;

// A Message holding a T with `nlohmann::json T::to_json() const`.
template <typename T>
class TypedMessage final : public Message {
 public:
  explicit TypedMessage(T value) : value_(std::move(value)) {}
  const T& value() const { return value_; }
  nlohmann::json to_json() const override { return value_.to_json(); }

 private:
  T value_;
};

// The T inside `m`, or nullptr when m is empty or holds another type.
template <typename T>
const T* message_as(const MessagePtr& m) {
  auto* typed = dynamic_cast<const TypedMessage<T>*>(m.get());
  return typed ? &typed->value() : nullptr;
}

struct TaskSpec {
  std::string endpoint;  // endpoint name (a label for LocalInvoker)
  std::string function;  // registered function name
  nlohmann::json args = nlohmann::json::object();
  double deadline_s = 0;  // seconds from submission; 0 = none
  // Optional typed form of args (then args may stay empty, or null: no JSON
  // object allocated for a task that never needs one): see Message.
  MessagePtr message;
  // The caller's own number for the task, handed back in TaskResult::tag (so
  // a shared batch callback knows whose result it got without a map from
  // task ids). In-process only: not part of the wire form.
  uint64_t tag = 0;
  // Scheduling hint for an invoker with a queue of its own (LocalInvoker):
  // queued tasks of a higher priority start first, FIFO within one priority
  // (the engine gives aggregations priority over training, so a parent folds
  // its children as they arrive instead of after every queued train task).
  // In-process only: REST endpoints run tasks in lease order.
  int priority = 0;

  // The JSON args: `args`, or message->to_json() when only the message is set
  // (args empty or null).
  nlohmann::json json_args() const;
  // {"endpoint","function","args","deadline_s"} (args = json_args());
  // from_json names the bad field.
  nlohmann::json to_json() const;
  static StatusOr<TaskSpec> from_json(const nlohmann::json& j, const std::string& where = "task");
};

enum class TaskState { kPending, kRunning, kSucceeded, kFailed, kCancelled, kDeadlineExceeded };

// "pending", "running", "succeeded", "failed", "cancelled", "deadline_exceeded".
const char* task_state_name(TaskState state);
StatusOr<TaskState> parse_task_state(std::string_view name);
bool is_terminal(TaskState state);
// The final state of a task whose function returned `s`: Cancelled and
// DeadlineExceeded keep their meaning (the task stopped when asked), any
// other error is a failure.
TaskState final_state(const Status& s);
// "succeeded, failed, cancelled, deadline_exceeded", for error messages.
extern const char* const kFinalStates;

struct TaskResult {
  std::string task_id;
  TaskState state = TaskState::kPending;
  nlohmann::json result;    // the function's value when kSucceeded
  MessagePtr message;       // instead of `result`, when a typed function ran in-process
  std::string error;        // why, for every other terminal state
  double submitted_at = 0;  // wall seconds (Unix epoch); 0 = unknown
  double started_at = 0;
  double finished_at = 0;
  uint64_t tag = 0;  // TaskSpec::tag of the task (in-process only)

  bool ok() const { return state == TaskState::kSucceeded; }

  // {"id","state","result","error","submitted_at","started_at","finished_at"}.
  nlohmann::json to_json() const;
  static StatusOr<TaskResult> from_json(const nlohmann::json& j);
};

using ResultCallback = std::function<void(const TaskResult&)>;
// One callback shared by the tasks of a batch (not a copy per task).
using SharedCallback = std::shared_ptr<const ResultCallback>;

// Shared completion state of one task: its outcome (delivered once) plus a
// cooperative cancellation flag. Invoker implementations create it; users see
// TaskHandle. The promise behind future() is made only when someone asks for
// it: most tasks are consumed through their callback, and a promise costs an
// allocation and a once-flag per task. Until then the result is kept here.
// Thread safety: all methods may be called concurrently.
class TaskCompletion {
 public:
  TaskCompletion(std::string id, double submitted_at, ResultCallback on_done, uint64_t tag = 0);
  // The batch form: `on_done` (may be null) is shared, not copied.
  TaskCompletion(std::string id, double submitted_at, SharedCallback on_done, uint64_t tag);

  const std::string& id() const { return id_; }
  double submitted_at() const { return submitted_at_; }
  std::shared_future<TaskResult> future() const;
  bool done() const { return done_.load(std::memory_order_acquire); }

  // First call wins: runs the callback (exceptions are logged and swallowed),
  // then fulfils the future. Returns false when the task was already done.
  // task_id, tag and a zero submitted_at are filled in from this object.
  bool complete(TaskResult result);

  void request_cancel() { cancel_.store(true, std::memory_order_release); }
  bool cancel_requested() const { return cancel_.load(std::memory_order_acquire) || done(); }

 private:
  const std::string id_;
  const double submitted_at_;
  const uint64_t tag_;
  std::atomic<bool> done_{false};
  std::atomic<bool> cancel_{false};
  SharedCallback on_done_;
  mutable std::mutex mu_;                                    // guards the three below
  mutable std::optional<std::promise<TaskResult>> promise_;  // asked for before completion
  mutable std::shared_future<TaskResult> future_;
  mutable std::optional<TaskResult> result_;  // completed before anyone asked
};

// A task's id and future. Cheap to copy; outlives the invoker safely.
class TaskHandle {
 public:
  TaskHandle() = default;
  explicit TaskHandle(std::shared_ptr<TaskCompletion> completion)
      : completion_(std::move(completion)) {}

  bool valid() const { return completion_ != nullptr; }
  const std::string& id() const;
  std::shared_future<TaskResult> future() const;
  // Blocks until the task is terminal.
  TaskResult wait() const;

 private:
  std::shared_ptr<TaskCompletion> completion_;
};

class Invoker {
 public:
  virtual ~Invoker();

  virtual TaskHandle submit(TaskSpec spec, ResultCallback on_done = nullptr) = 0;
  // One handle per spec, in order; on_done runs once per task.
  virtual std::vector<TaskHandle> submit_batch(std::vector<TaskSpec> specs,
                                               ResultCallback on_done = nullptr) = 0;
  // Unknown or finished ids are ignored.
  virtual void cancel(const std::string& task_id) = 0;
  // Stops accepting new work from outside (callbacks may still submit), waits
  // for outstanding tasks to finish, joins threads. Idempotent. Must not be
  // called from a callback.
  virtual Status close();
};

// Helpers for implementations.
TaskResult make_terminal(TaskState state, std::string error, double submitted_at = 0);

}  // namespace flight::faas
