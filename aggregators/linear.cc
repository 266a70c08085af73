// Linear strategies: fedavg, fedsgd, fedprox and the server optimizers
// fedavgm, fedadam, fedyogi, fedadagrad. All aggregate with the weighted mean
// (strategy.cc); they differ in worker weights, worker hooks and server steps.
#include <ATen/ops/zeros.h>

#include <cmath>

#include "aggregators/internal.h"
#include "flight/params/param_ops.h"

namespace flight::aggregators {
namespace {

// ---------------------------------------------------------------- fedavg / fedsgd

class FedAvg : public Strategy {
 public:
  using Strategy::Strategy;
};

// Unweighted mean of the workers' models: with one local step each, the mean
// of models is the global model minus lr times the mean gradient.
class FedSgd : public Strategy {
 public:
  using Strategy::Strategy;
  double worker_weight(int64_t /*n_samples*/) const override { return 1.0; }
};

// ---------------------------------------------------------------- fedprox

// mu/2 * sum ||w - w_global||^2 over the floating parameters, built from the
// live (requires_grad) tensors so backward() adds mu (w - w_global) to each
// parameter's gradient. The anchors are detached copies: they are constants of
// the local objective.
class ProximalHook : public TrainHook {
 public:
  explicit ProximalHook(double mu) : mu_(mu) {}

  void begin(const ParamSet& global) override {
    anchors_ = ParamSet();
    for (const auto& e : global) {
      if (is_floating(e.tensor)) anchors_.add(e.name, e.tensor.detach().clone());
    }
  }

  at::Tensor penalty(const ParamSet& current) override {
    at::Tensor total;
    for (const auto& e : current) {
      if (!is_floating(e.tensor)) continue;
      const at::Tensor* anchor = anchors_.find(e.name);
      FLIGHT_CHECK(anchor != nullptr, "FedProx: trainable parameter '" + e.name +
                                          "' is not in the global model given to begin()");
      FLIGHT_CHECK(anchor->sizes() == e.tensor.sizes(),
                   "FedProx: parameter '" + e.name + "' is " + describe_tensor(e.tensor) +
                       " but the global model has " + describe_tensor(*anchor));
      at::Tensor a = anchor->scalar_type() == e.tensor.scalar_type()
                         ? *anchor
                         : anchor->to(e.tensor.scalar_type());
      at::Tensor d = e.tensor.sub(a);
      at::Tensor term = d.mul(d).sum();
      total = total.defined() ? total.add(term) : term;
    }
    if (!total.defined()) return at::zeros({});
    return total.mul(mu_ / 2);
  }

 private:
  double mu_;
  ParamSet anchors_;
};

class FedProx : public Strategy {
 public:
  FedProx(StrategyOptions o, double mu) : Strategy(std::move(o)), mu_(mu) {}
  nlohmann::json params_json() const override { return {{"mu", mu_}}; }
  std::unique_ptr<TrainHook> worker_hook() const override {
    return std::make_unique<ProximalHook>(mu_);
  }

 private:
  double mu_;
};

// ---------------------------------------------------------------- server optimizers

enum class ServerOpt { kMomentum, kAdam, kYogi, kAdagrad };

struct ServerOptConfig {
  ServerOpt kind;
  double server_lr;
  double beta1;  // momentum for fedavgm
  double beta2;  // unused by fedavgm, fedadagrad
  double tau;    // unused by fedavgm
  double initial_accumulator;
};

// Reddi et al. 2021, Algorithm 2, with Delta_t = aggregate - global:
//   m_t = beta1 m_{t-1} + (1 - beta1) Delta_t                (m_{-1} = 0)
//   adagrad: v_t = v_{t-1} + Delta_t^2
//   yogi:    v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)
//   adam:    v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2     (v_{-1} = initial_accumulator)
//   x_{t+1} = x_t + server_lr m_t / (sqrt(v_t) + tau)
// No bias correction (as in the paper). FedAvgM (Hsu et al. 2019):
//   v_t = momentum v_{t-1} + Delta_t;  x_{t+1} = x_t + server_lr v_t.
// State is kept in float32 (float64 for float64 tensors) for floating tensors
// only; non-floating tensors take max(global, aggregate).
class ServerOptStrategy : public Strategy {
 public:
  ServerOptStrategy(StrategyOptions o, ServerOptConfig c) : Strategy(std::move(o)), c_(c) {}

  nlohmann::json params_json() const override {
    switch (c_.kind) {
      case ServerOpt::kMomentum:
        return {{"server_lr", c_.server_lr}, {"momentum", c_.beta1}};
      case ServerOpt::kAdagrad:
        return {{"server_lr", c_.server_lr},
                {"beta1", c_.beta1},
                {"tau", c_.tau},
                {"initial_accumulator", c_.initial_accumulator}};
      default:
        return {{"server_lr", c_.server_lr},
                {"beta1", c_.beta1},
                {"beta2", c_.beta2},
                {"tau", c_.tau},
                {"initial_accumulator", c_.initial_accumulator}};
    }
  }

  StatusOr<ParamSet> server_update(const ParamSet& global, const Weighted& aggregate) override {
    Status s = global.check_compatible(aggregate.params);
    if (!s.is_ok()) return s.with_context("aggregate does not match the global model");
    FLIGHT_RETURN_IF_ERROR(check_supported(global));
    if (!initialised_) {
      init_state(global);
    } else {
      FLIGHT_RETURN_IF_ERROR(check_state(global));
    }
    // Everything that can fail has been checked: from here on the state moves.
    ParamSet out;
    for (size_t i = 0; i < global.size(); ++i) {
      const std::string& name = global[i].name;
      const at::Tensor& g = global[i].tensor;
      const at::Tensor& a = aggregate.params[i].tensor;
      if (!is_floating(g)) {
        at::Tensor r = g.clone(at::MemoryFormat::Contiguous);
        add_scaled_(r, a, 1.0);  // max for non-floating tensors
        out.add(name, std::move(r));
        continue;
      }
      const at::ScalarType dt = accumulator_dtype(g.scalar_type());
      at::Tensor x = g.to(dt, /*non_blocking=*/false, /*copy=*/true).contiguous();
      at::Tensor delta = a.to(dt).sub(x);
      at::Tensor& m = *m_.find(name);
      if (c_.kind == ServerOpt::kMomentum) {
        m.mul_(c_.beta1).add_(delta);
        x.add_(m, c_.server_lr);
      } else {
        at::Tensor& v = *v_.find(name);
        m.mul_(c_.beta1).add_(delta, 1 - c_.beta1);
        at::Tensor d2 = delta.mul(delta);
        switch (c_.kind) {
          case ServerOpt::kAdam:
            v.mul_(c_.beta2).add_(d2, 1 - c_.beta2);
            break;
          case ServerOpt::kYogi:
            v.sub_(d2.mul(v.sub(d2).sign()), 1 - c_.beta2);
            break;
          case ServerOpt::kAdagrad:
            v.add_(d2);
            break;
          default:
            break;
        }
        x.addcdiv_(m, v.sqrt().add_(c_.tau), c_.server_lr);
      }
      out.add(name, x.scalar_type() == g.scalar_type() ? x : x.to(g.scalar_type()));
    }
    ++step_;
    return out;
  }

  nlohmann::json state_json() const override {
    return {{"strategy", name()}, {"step", step_}, {"initialised", initialised_}};
  }

  ParamSet state_tensors() const override {
    ParamSet out;
    for (const auto& e : m_) out.add(m_prefix() + e.name, e.tensor);
    for (const auto& e : v_) out.add("v/" + e.name, e.tensor);
    return out;
  }

  Status load_state(const nlohmann::json& state, const ParamSet& tensors) override {
    FLIGHT_RETURN_IF_ERROR(Strategy::load_state(state, ParamSet()));
    int64_t step = 0;
    bool initialised = false;
    OptionReader r(state, "strategy '" + name() + "' state");
    r.known({"strategy"})
        .at_least("step", &step, int64_t{0}, true)
        .required("initialised", &initialised);
    FLIGHT_RETURN_IF_ERROR(r.finish());
    ParamSet m, v;
    for (const auto& e : tensors) {
      if (starts_with(e.name, m_prefix())) {
        m.add(e.name.substr(m_prefix().size()), e.tensor.clone(at::MemoryFormat::Contiguous));
      } else if (c_.kind != ServerOpt::kMomentum && starts_with(e.name, "v/")) {
        v.add(e.name.substr(2), e.tensor.clone(at::MemoryFormat::Contiguous));
      } else {
        return invalid_argument("strategy '" + name() + "' state has an unexpected tensor '" +
                                e.name + "'");
      }
    }
    if (c_.kind != ServerOpt::kMomentum) {
      Status s = m.check_compatible(v);
      if (!s.is_ok()) return s.with_context("strategy '" + name() + "' state: m and v differ");
    }
    m_ = std::move(m);
    v_ = std::move(v);
    step_ = step;
    initialised_ = initialised;
    return Status::ok();
  }

 private:
  std::string m_prefix() const { return c_.kind == ServerOpt::kMomentum ? "momentum/" : "m/"; }

  void init_state(const ParamSet& global) {
    m_ = ParamSet();
    v_ = ParamSet();
    for (const auto& e : global) {
      if (!is_floating(e.tensor)) continue;
      auto opts = e.tensor.options().dtype(accumulator_dtype(e.tensor.scalar_type()));
      m_.add(e.name, at::zeros(e.tensor.sizes(), opts));
      if (c_.kind != ServerOpt::kMomentum) {
        v_.add(e.name, at::zeros(e.tensor.sizes(), opts).fill_(c_.initial_accumulator));
      }
    }
    initialised_ = true;
  }

  Status check_state(const ParamSet& global) const {
    size_t n_floating = 0;
    for (const auto& e : global) {
      if (!is_floating(e.tensor)) continue;
      ++n_floating;
      const at::Tensor* m = m_.find(e.name);
      const at::Tensor* v = v_.find(e.name);
      if (m == nullptr || (c_.kind != ServerOpt::kMomentum && v == nullptr)) {
        return invalid_argument("strategy '" + name() + "': optimizer state has no entry for '" +
                                e.name + "'; was it saved for a different model?");
      }
      if (m->sizes() != e.tensor.sizes() ||
          m->scalar_type() != accumulator_dtype(e.tensor.scalar_type())) {
        return invalid_argument("strategy '" + name() + "': optimizer state for '" + e.name +
                                "' is " + describe_tensor(*m) + " but the model has " +
                                describe_tensor(e.tensor));
      }
    }
    if (m_.size() != n_floating) {
      return invalid_argument("strategy '" + name() + "': optimizer state has " +
                              std::to_string(m_.size()) + " tensors but the model has " +
                              std::to_string(n_floating) + " floating tensors");
    }
    return Status::ok();
  }

  ServerOptConfig c_;
  ParamSet m_;  // momentum (fedavgm) or first moment
  ParamSet v_;  // second moment (adaptive only)
  int64_t step_ = 0;
  bool initialised_ = false;
};

StatusOr<std::unique_ptr<Strategy>> make_server_opt(const StrategyOptions& o, ServerOpt kind) {
  OptionReader r(o.params, "strategy.params");
  ServerOptConfig c{};
  c.kind = kind;
  if (kind == ServerOpt::kMomentum) {
    c.server_lr = 1.0;
    r.optional("server_lr", &c.server_lr);
    c.beta1 = 0.9;
    r.optional("momentum", &c.beta1);
    if (c.beta1 < 0 || c.beta1 >= 1) r.fail("momentum", "must be in [0, 1)");
  } else {
    c.server_lr = 0.01;
    r.optional("server_lr", &c.server_lr);
    c.beta1 = 0.9;
    r.optional("beta1", &c.beta1);
    if (kind != ServerOpt::kAdagrad) {
      c.beta2 = 0.99;
      r.optional("beta2", &c.beta2);
      if (c.beta2 < 0 || c.beta2 >= 1) r.fail("beta2", "must be in [0, 1)");
    }
    c.tau = 1e-3;
    r.optional("tau", &c.tau);
    c.initial_accumulator = c.tau * c.tau;
    r.optional("initial_accumulator", &c.initial_accumulator);
    if (c.beta1 < 0 || c.beta1 >= 1) r.fail("beta1", "must be in [0, 1)");
    if (!(c.tau > 0)) r.fail("tau", "must be > 0");
    if (c.initial_accumulator < 0) r.fail("initial_accumulator", "must be >= 0");
  }
  if (!(c.server_lr > 0)) r.fail("server_lr", "must be > 0");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return std::make_unique<ServerOptStrategy>(o, c);
}

template <typename S>
StatusOr<std::unique_ptr<Strategy>> make_plain(const StrategyOptions& o) {
  OptionReader r(o.params, "strategy.params");
  FLIGHT_RETURN_IF_ERROR(r.finish());
  return std::make_unique<S>(o);
}

}  // namespace

void register_linear_strategies(StrategyRegistry& registry) {
  registry.add("fedavg", make_plain<FedAvg>);
  registry.add("fedsgd", make_plain<FedSgd>);
  registry.add("fedprox", [](const StrategyOptions& o) -> StatusOr<std::unique_ptr<Strategy>> {
    OptionReader r(o.params, "strategy.params");
    double mu = 0.01;
    r.optional("mu", &mu);
    if (mu < 0) r.fail("mu", "must be >= 0");
    FLIGHT_RETURN_IF_ERROR(r.finish());
    return std::make_unique<FedProx>(o, mu);
  });
  registry.add("fedavgm",
               [](const StrategyOptions& o) { return make_server_opt(o, ServerOpt::kMomentum); });
  registry.add("fedadam",
               [](const StrategyOptions& o) { return make_server_opt(o, ServerOpt::kAdam); });
  registry.add("fedyogi",
               [](const StrategyOptions& o) { return make_server_opt(o, ServerOpt::kYogi); });
  registry.add("fedadagrad",
               [](const StrategyOptions& o) { return make_server_opt(o, ServerOpt::kAdagrad); });
}

}  // namespace flight::aggregators
