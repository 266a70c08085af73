// Registry<Base, Args...>: name -> factory, the one way a backend is chosen by
// name (`connector: {kind: redis}`, `strategy: {name: fedavg}`). Never an
// if-chain in a base class.
//
// Builtins are registered explicitly by the layer's own registration function
// (called from the registry accessor), not by static initialisers, which a
// static-library link silently drops.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flight/base/status.h"
#include "flight/base/strings.h"

namespace flight {

template <typename Base, typename... Args>
class Registry {
 public:
  using Factory = std::function<StatusOr<std::unique_ptr<Base>>(Args...)>;

  // `what` names the kind of thing registered, for error messages ("connector").
  explicit Registry(std::string what) : what_(std::move(what)) {}

  // Registers `name`; re-registering a name is a broken invariant.
  void add(const std::string& name, Factory factory) {
    std::lock_guard<std::mutex> lock(mu_);
    FLIGHT_CHECK(factories_.count(name) == 0, what_ + " '" + name + "' registered twice");
    factories_.emplace(name, std::move(factory));
  }

  // Forgets `name` (for process-local entries such as in-memory models);
  // unknown names are ignored.
  void remove(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    factories_.erase(name);
  }

  bool contains(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    return factories_.count(name) != 0;
  }

  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& kv : factories_) out.push_back(kv.first);
    return out;
  }

  // Unknown names give NotFound listing the known ones, with a "did you mean".
  StatusOr<std::unique_ptr<Base>> create(const std::string& name, Args... args) const {
    Factory factory;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = factories_.find(name);
      if (it == factories_.end()) {
        std::vector<std::string> known;
        for (const auto& kv : factories_) known.push_back(kv.first);
        return not_found("unknown " + what_ + " '" + name + "'" + did_you_mean(name, known) +
                         " (known: " + join(known, ", ") + ")");
      }
      factory = it->second;
    }
    return factory(std::forward<Args>(args)...);
  }

 private:
  std::string what_;
  mutable std::mutex mu_;
  std::map<std::string, Factory> factories_;
};

}  // namespace flight
