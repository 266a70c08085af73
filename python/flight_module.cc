// flight._flight: the pybind11 extension behind the `flight` Python package
// (python/flight/). Thin: configs, runs, in-memory models and datasets and the
// Topology type; the Python side (flight/__init__.py) shapes the API.
//
// Tensors cross with torch's own pybind11 casters (libtorch_python, the same
// libtorch_cpu as the engine), so at::Tensor <-> torch.Tensor shares storage:
// no copy. A torch.jit.ScriptModule's C++ object (`module._c`) is cast to
// torch::jit::Module the same way: no file, no serialisation.
//
// GIL: released while the engine runs; re-acquired on the driving thread for
// on_round and for the between-round signal check (Ctrl-C).
#include <torch/extension.h>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/learning/dataset.h"
#include "flight/learning/torchscript_module.h"
#include "topology/topology.h"

namespace py = pybind11;
using nlohmann::json;

namespace flight::python {
namespace {

// flight.Error (RuntimeError) and flight.ConfigError (Error, ValueError).
PyObject* g_error = nullptr;
PyObject* g_config_error = nullptr;

[[noreturn]] void raise(const Status& s) {
  const bool config = s.code() == StatusCode::kInvalidArgument ||
                      s.code() == StatusCode::kNotFound || s.code() == StatusCode::kOutOfRange;
  PyErr_SetString(config ? g_config_error : g_error, s.message().c_str());
  throw py::error_already_set();
}

void check(const Status& s) {
  if (!s.is_ok()) raise(s);
}

template <typename T>
T unwrap(StatusOr<T> v) {
  if (!v.is_ok()) raise(v.status());
  return std::move(v).value();
}

py::object to_py(const json& j) {
  if (j.is_null()) return py::none();
  return py::module_::import("json").attr("loads")(j.dump());
}

// A rounds.csv row as a dict, keyed like the file's header (same cells).
py::dict row_dict(const engine::RoundRow& row) {
  const size_t tiers = std::max<size_t>(1, row.bytes_up_by_tier.size());
  const auto header = engine::round_header(tiers);
  const auto cells = engine::round_cells(row, tiers);
  py::dict d;
  for (size_t i = 0; i < header.size() && i < cells.size(); ++i) {
    const std::string& c = cells[i];
    if (c.empty()) {
      d[py::str(header[i])] = py::none();
    } else if (c.find_first_of(".eEn") == std::string::npos) {
      d[py::str(header[i])] = py::int_(std::stoll(c));
    } else {
      d[py::str(header[i])] = py::float_(std::strtod(c.c_str(), nullptr));
    }
  }
  return d;
}

// Loads a config (kind "path": a YAML file with --set style overrides; "json":
// a dict's JSON text with paths relative to base_dir) and returns the resolved
// config as JSON text. Errors name the file/line or the key path.
std::string load_config(const std::string& kind, const std::string& payload,
                        const std::vector<std::string>& overrides, const std::string& base_dir) {
  if (kind == "path")
    return unwrap(engine::ExperimentConfig::load(payload, overrides)).to_json().dump();
  json j;
  try {
    j = json::parse(payload);
  } catch (const json::exception& e) {
    raise(invalid_argument(std::string("config: not JSON-serialisable: ") + e.what()));
  }
  return unwrap(engine::ExperimentConfig::from_json(j, "config", base_dir)).to_json().dump();
}

// Runs a resolved config. Returns (summary JSON text, [(name, tensor)],
// interrupt): interrupt is Ctrl-C's KeyboardInterrupt when the run stopped
// cleanly after a round (checkpoint written), else None. An exception raised
// by on_round also stops the run after the round and is re-raised.
py::tuple run(const std::string& resolved_json, const std::string& output_dir, bool resume,
              bool quiet, py::object on_round) {
  const engine::ExperimentConfig config =
      unwrap(engine::ExperimentConfig::from_json(json::parse(resolved_json), "config", "."));
  engine::RunOptions options;
  options.output_dir = output_dir;
  options.resume = resume;
  options.quiet = quiet;
  std::optional<py::error_already_set> pending;
  if (!on_round.is_none()) {
    options.on_round = [&](const engine::RoundRow& row) {
      py::gil_scoped_acquire gil;
      if (pending) return;
      try {
        on_round(row_dict(row));
      } catch (py::error_already_set& e) {
        pending.emplace(std::move(e));
      }
    };
  }
  options.should_stop = [&]() {
    py::gil_scoped_acquire gil;
    // Runs Python's signal handlers: SIGINT raises KeyboardInterrupt here.
    if (!pending && PyErr_CheckSignals() != 0) pending.emplace();
    return pending.has_value();
  };
  StatusOr<engine::RunSummary> summary = internal_error("not run");
  {
    py::gil_scoped_release nogil;
    summary = engine::run_experiment(config, options);
  }
  if (!summary.is_ok()) {
    if (pending) throw std::move(*pending);
    raise(summary.status());
  }
  // A callback's own error propagates as raised (with its traceback); Ctrl-C's
  // KeyboardInterrupt is handed back so the caller can say where to resume.
  py::object interrupt = py::none();
  if (pending) {
    if (!pending->matches(PyExc_KeyboardInterrupt)) throw std::move(*pending);
    interrupt = pending->value();
  }
  py::list model;
  for (const auto& e : summary->final_model) model.append(py::make_tuple(e.name, e.tensor));
  json s = summary->to_json();
  s["stopped"] = summary->stopped;
  return py::make_tuple(s.dump(), model, interrupt);
}

at::Tensor check_tensor(const at::Tensor& t, const char* what) {
  if (!t.defined()) raise(invalid_argument(std::string("data: ") + what + " is missing"));
  if (t.device().type() != c10::kCPU) {
    raise(invalid_argument(std::string("data: ") + what + " must be a CPU tensor"));
  }
  return t;
}

// Shares the tensors (no copy) under `name`; see learning::register_dataset.
void register_dataset(const std::string& name, const at::Tensor& train_x, const at::Tensor& train_y,
                      const at::Tensor& test_x, const at::Tensor& test_y, int64_t num_classes,
                      std::optional<std::vector<std::vector<int64_t>>> parts) {
  auto make = [&](const at::Tensor& x, const at::Tensor& y, const char* split) {
    auto d = std::make_shared<learning::Dataset>();
    d->images = check_tensor(x, (std::string(split) + " inputs").c_str());
    d->labels = check_tensor(y, (std::string(split) + " labels").c_str());
    d->num_classes = num_classes;
    return std::shared_ptr<const learning::Dataset>(std::move(d));
  };
  learning::DatasetPair pair;
  pair.train = make(train_x, train_y, "train");
  pair.test = make(test_x, test_y, "test");
  if (parts) {
    pair.parts = std::make_shared<const std::vector<std::vector<int64_t>>>(std::move(*parts));
  }
  check(learning::register_dataset(name, std::move(pair)));
}

// The tensors the engine reads for dataset `name` (for zero-copy checks).
py::tuple dataset_tensors(const std::string& name) {
  learning::DataSpec spec;
  spec.dataset = name;
  learning::DatasetPair pair = unwrap(learning::load_dataset(spec));
  return py::make_tuple(pair.train->images, pair.train->labels, pair.test->images,
                        pair.test->labels);
}

// `scripted` is a torch.jit.ScriptModule; its C++ Module is shared, not copied
// (models made from the registration are clones).
void register_module(const std::string& name, py::handle scripted) {
  torch::jit::Module module;
  try {
    module = py::cast<torch::jit::Module>(scripted.attr("_c"));
  } catch (const py::error_already_set&) {
    throw;
  } catch (const std::exception& e) {
    raise(invalid_argument(std::string("model: not a torch.jit.ScriptModule: ") + e.what()));
  }
  check(learning::register_torchscript_module(name, module));
}

void bind_topology(py::module_& m) {
  using topology::Node;
  using topology::Topology;
  py::class_<Node>(m, "Node", "One topology node (read-only).")
      .def_readonly("id", &Node::id)
      .def_property_readonly("kind", [](const Node& n) { return topology::kind_name(n.kind); })
      .def_readonly("parent", &Node::parent)
      .def_readonly("children", &Node::children)
      .def_readonly("endpoint", &Node::endpoint)
      .def_readonly("proxystore_endpoint", &Node::proxystore_endpoint)
      .def_property_readonly("connector", [](const Node& n) { return to_py(n.connector); })
      .def_property_readonly("data", [](const Node& n) { return to_py(n.data); })
      .def_property_readonly("extra", [](const Node& n) { return to_py(n.extra); })
      .def_readonly("speed", &Node::speed)
      .def_readonly("line", &Node::line)
      .def("__repr__", [](const Node& n) {
        return "Node(id='" + n.id + "', kind='" + topology::kind_name(n.kind) + "')";
      });

  py::class_<Topology>(m, "Topology", "A validated topology tree (immutable).")
      .def_static(
          "load", [](const std::string& path) { return unwrap(Topology::load(path)); },
          py::arg("path"), "Reads and validates a YAML or JSON file.")
      .def_static(
          "parse_yaml",
          [](const std::string& text, const std::string& source) {
            return unwrap(Topology::parse_yaml(text, source));
          },
          py::arg("text"), py::arg("source") = "<yaml>")
      .def_static(
          "parse_json",
          [](const std::string& text, const std::string& source) {
            return unwrap(Topology::parse_json(text, source));
          },
          py::arg("text"), py::arg("source") = "<json>")
      .def_static("flat", &topology::generate::flat, py::arg("workers"))
      .def_static("balanced", &topology::generate::balanced, py::arg("branching"),
                  py::arg("height"))
      .def_static("by_leaves", &topology::generate::by_leaves, py::arg("leaves"), py::arg("height"))
      .def_static(
          "tiers",
          [](const std::vector<size_t>& aggregators, size_t workers, uint64_t seed) {
            return unwrap(topology::generate::tiers(aggregators, workers, seed));
          },
          py::arg("aggregators"), py::arg("workers"), py::arg("seed") = 0)
      .def("to_yaml", &Topology::to_yaml)
      .def(
          "save", [](const Topology& t, const std::string& path) { check(t.save_yaml(path)); },
          py::arg("path"))
      .def_property_readonly("root", [](const Topology& t) { return t.root(); })
      .def(
          "node",
          [](const Topology& t, const std::string& id) {
            const Node* n = t.find(id);
            if (!n) throw py::key_error("no node '" + id + "' in " + t.source());
            return *n;
          },
          py::arg("id"))
      .def("__contains__", &Topology::contains)
      .def("__len__", &Topology::size)
      .def_property_readonly("nodes", &Topology::nodes)
      .def("workers", &Topology::workers)
      .def("aggregators", &Topology::aggregators)
      .def("parent", &Topology::parent, py::arg("id"))
      .def("children", &Topology::children, py::arg("id"))
      .def("ancestors", &Topology::ancestors, py::arg("id"))
      .def("subtree", &Topology::subtree, py::arg("id"))
      .def("leaves_under", &Topology::leaves_under, py::arg("id"))
      .def("tier", &Topology::tier, py::arg("id"))
      .def("nodes_per_tier", &Topology::nodes_per_tier)
      .def_property_readonly("height", &Topology::height)
      .def("induced", &Topology::induced, py::arg("selected_workers"))
      .def_property_readonly("warnings", &Topology::warnings)
      .def_property_readonly("source", &Topology::source)
      .def("__eq__", [](const Topology& a, const Topology& b) { return a == b; })
      .def("__repr__", [](const Topology& t) {
        return "Topology(" + std::to_string(t.size()) + " nodes, " +
               std::to_string(t.workers().size()) + " workers, height " +
               std::to_string(t.height()) + ", source '" + t.source() + "')";
      });
}

}  // namespace
}  // namespace flight::python

PYBIND11_MODULE(_flight, m) {
  using namespace flight::python;
  m.doc() = "Flight's engine (C++), for the flight Python package.";
  g_error = PyErr_NewException("flight.Error", PyExc_RuntimeError, nullptr);
  py::tuple bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_config_error = PyErr_NewException("flight.ConfigError", bases.ptr(), nullptr);
  m.attr("Error") = py::handle(g_error);
  m.attr("ConfigError") = py::handle(g_config_error);

  m.def("load_config", &load_config, py::arg("kind"), py::arg("payload"), py::arg("overrides"),
        py::arg("base_dir"));
  m.def("run", &run, py::arg("resolved_json"), py::arg("output_dir"), py::arg("resume"),
        py::arg("quiet"), py::arg("on_round"));
  m.def("register_dataset", &register_dataset, py::arg("name"), py::arg("train_x"),
        py::arg("train_y"), py::arg("test_x"), py::arg("test_y"), py::arg("num_classes"),
        py::arg("parts"));
  m.def("unregister_dataset", &flight::learning::unregister_dataset, py::arg("name"));
  m.def("dataset_tensors", &dataset_tensors, py::arg("name"));
  m.def("register_module", &register_module, py::arg("name"), py::arg("scripted"));
  m.def("unregister_module", &flight::learning::unregister_torchscript_module, py::arg("name"));
  bind_topology(m);
}
