// Proxy<T>: a lazy handle to a T that lives in a Store (after ProxyStore's
// proxies). It is a Ref plus a memo: the first get() resolves it (fetch +
// decode) and later get()s return the same value; prefetch() starts resolving
// on a background thread so the fetch overlaps other work.
//
// Copies share one resolution (a copy is a shared_ptr copy: cheap). to_json()
// is the Ref's JSON, so a Proxy travels wherever a Ref does; from_json() makes
// an unresolved Proxy.
//
// The Store used to resolve must outlive the Proxy and its copies (a pending
// prefetch is waited for when the last copy goes). With no Store given,
// Store::process_default() is used, which resolves any Ref through the
// process's shared connectors.
//
// A failed resolution is remembered (get() keeps returning that error); build a
// new Proxy from ref() to retry.
//
// Supported T: ParamSet (through ProxyTraits; specialise it for more types).
//
// Thread safety: all methods may be called concurrently on one Proxy or its copies.
#pragma once

#include <future>
#include <memory>
#include <mutex>
#include <utility>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "transport/ref.h"
#include "transport/store.h"

namespace flight::transport {

template <typename T>
struct ProxyTraits;

template <>
struct ProxyTraits<ParamSet> {
  static StatusOr<ParamSet> resolve(Store& store, const Ref& ref) { return store.get(ref); }
};

template <typename T>
class Proxy {
 public:
  // An empty proxy: get() fails with FailedPrecondition.
  Proxy() = default;
  explicit Proxy(Ref ref, Store* store = nullptr)
      : state_(std::make_shared<State>(std::move(ref), store ? store : &Store::process_default())) {
  }

  bool empty() const { return state_ == nullptr; }
  const Ref& ref() const {
    static const Ref kNone;
    return state_ ? state_->ref : kNone;
  }

  // The value, resolving it on first use (on this thread unless a prefetch or
  // another thread already started).
  StatusOr<T> get() const {
    if (!state_) return failed_precondition("get() of an empty Proxy");
    auto [future, mine] = state_->begin();
    if (mine) state_->run();
    return future.get();
  }

  // Starts resolving in the background; no-op when already started.
  void prefetch() const {
    if (!state_) return;
    auto [future, mine] = state_->begin();
    (void)future;
    if (!mine) return;
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->background = std::async(std::launch::async, [s = state_.get()] { s->run(); });
  }

  // True once the value (or an error) is available without blocking.
  bool ready() const {
    if (!state_) return false;
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->started &&
           state_->result.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

  nlohmann::json to_json() const { return ref().to_json(); }
  static StatusOr<Proxy> from_json(const nlohmann::json& j, Store* store = nullptr) {
    FLIGHT_ASSIGN_OR_RETURN(Ref ref, Ref::from_json(j));
    return Proxy(std::move(ref), store);
  }

 private:
  struct State {
    State(Ref r, Store* s) : ref(std::move(r)), store(s) {}
    ~State() {
      // A pending prefetch uses this State: wait for it (std::async's future
      // would block here anyway; being explicit keeps the order obvious).
      if (background.valid()) background.wait();
    }

    // Returns the shared result and whether the caller must compute it.
    std::pair<std::shared_future<StatusOr<T>>, bool> begin() {
      std::lock_guard<std::mutex> lock(mu);
      if (started) return {result, false};
      started = true;
      result = promise.get_future().share();
      return {result, true};
    }

    void run() {
      try {
        promise.set_value(ProxyTraits<T>::resolve(*store, ref));
      } catch (const std::exception& e) {
        promise.set_value(internal_error(std::string("resolving proxy: ") + e.what()));
      }
    }

    Ref ref;
    Store* store;
    std::mutex mu;
    bool started = false;
    std::promise<StatusOr<T>> promise;
    std::shared_future<StatusOr<T>> result;
    std::future<void> background;
  };

  std::shared_ptr<State> state_;
};

}  // namespace flight::transport
