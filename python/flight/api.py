"""flight.run: one experiment, from a config file or dict, on the C++ engine."""

import collections
import copy
import csv
import itertools
import json
import os
import tempfile

import torch

from . import _flight
from ._flight import ConfigError, Topology


class ScriptError(ConfigError):
    """torch.jit.script rejected the model; the message says what and where."""


_names = itertools.count(1)


class Result:
    """What a run leaves behind.

    rows        per-round metrics, the columns of rounds.csv: a pandas.DataFrame
                when pandas imports, else a list of dicts
    summary     summary.json as a dict (final/best accuracy, bytes, time, ...)
    output_dir  the run directory (rounds.csv, tasks.csv, model.pt, checkpoints/)
    model       the trained model: the caller's module class with the learned
                weights when `model=` was given, a torch.jit.ScriptModule for a
                `model: {torchscript: ...}` config, else the state dict
    state_dict  the final global weights, name -> tensor (engine order)
    config      the resolved config (every key with its effective value)
    """

    def __init__(self, rows, summary, output_dir, model, state_dict, config):
        self.rows = rows
        self.summary = summary
        self.output_dir = output_dir
        self.model = model
        self.state_dict = state_dict
        self.config = config

    def __repr__(self):
        acc = self.summary.get("final_accuracy")
        return (f"Result(output_dir={self.output_dir!r}, rounds={self.summary.get('rounds_completed')}, "
                f"final_accuracy={acc})")


def _number(cell):
    if cell == "":
        return None
    try:
        return int(cell)
    except ValueError:
        return float(cell)


def read_rows(path):
    """rounds.csv as a DataFrame (pandas importable) or a list of dicts."""
    if not os.path.exists(path):
        return []
    try:
        import pandas
    except ImportError:
        pandas = None
    if pandas is not None:
        return pandas.read_csv(path)
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _merge(base, extra):
    """Deep merge of override dicts into a config dict (extra wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _nest(overrides):
    """{"train__lr": 0.1} -> {"train": {"lr": 0.1}} (keyword arguments cannot hold dots)."""
    nested = {}
    for key, value in overrides.items():
        parts = key.replace(".", "__").split("__")
        node = nested
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return nested


def _flatten(nested, prefix=""):
    """{"train": {"lr": 0.1}} -> ["train.lr=0.1"]: `flight run --set` overrides whose
    values are JSON (which YAML reads back as the same value)."""
    out = []
    for key, value in nested.items():
        path = prefix + key
        if isinstance(value, dict) and value:
            out += _flatten(value, path + ".")
        else:
            out.append(f"{path}={json.dumps(value)}")
    return out


def _script(model):
    if isinstance(model, torch.jit.ScriptModule):
        return model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    try:
        return torch.jit.script(model)
    except Exception as e:  # TorchScript raises several types; all mean "cannot compile"
        raise ScriptError(
            f"model: torch.jit.script could not compile {type(model).__name__}: {e}") from e


def _split(split, what):
    """(inputs, labels) from a tuple/list of two tensors or a torch Dataset."""
    if isinstance(split, (tuple, list)) and len(split) == 2 and all(
            isinstance(t, torch.Tensor) for t in split):
        return split[0], split[1]
    if isinstance(split, torch.utils.data.TensorDataset) and len(split.tensors) == 2:
        return split.tensors  # shared, no copy
    if isinstance(split, torch.utils.data.Subset):
        x, y = _split(split.dataset, what)
        idx = torch.as_tensor(list(split.indices), dtype=torch.long)
        return x.index_select(0, idx), y.index_select(0, idx)
    if isinstance(split, torch.utils.data.Dataset):
        # A map-style dataset of (input, label) pairs: gathered once into two
        # tensors (a copy; hand over tensors or a TensorDataset to avoid it).
        xs, ys = [], []
        for i in range(len(split)):
            x, y = split[i]
            xs.append(torch.as_tensor(x))
            ys.append(int(y))
        if not xs:
            raise ConfigError(f"data: the {what} set is empty")
        return torch.stack(xs), torch.tensor(ys, dtype=torch.long)
    raise TypeError(f"data: {what} must be (inputs, labels) tensors or a torch Dataset, "
                    f"got {type(split).__name__}")


def normalise_data(data):
    """data= -> (train_x, train_y, test_x, test_y, num_classes)."""
    num_classes = None
    if isinstance(data, dict):
        unknown = set(data) - {"train", "test", "num_classes"}
        if unknown:
            raise ConfigError(f"data: unknown key(s) {sorted(unknown)} (use train, test, num_classes)")
        if "train" not in data or "test" not in data:
            raise ConfigError("data: needs both 'train' and 'test'")
        train, test, num_classes = data["train"], data["test"], data.get("num_classes")
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        train, test = data
    else:
        raise TypeError("data: expected (train, test) or {'train': ..., 'test': ...}, each "
                        "(inputs, labels) tensors or a torch Dataset")
    train_x, train_y = _split(train, "train")
    test_x, test_y = _split(test, "test")
    # Labels must be int64 for cross entropy: other integer types are converted
    # (a copy of the labels only); inputs are shared as they are.
    train_y, test_y = (y if y.dtype == torch.long else y.long() for y in (train_y, test_y))
    if num_classes is None:
        num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    return train_x, train_y, test_x, test_y, int(num_classes)


class _Registrations:
    """In-memory models and datasets registered for one run; removed afterwards."""

    def __init__(self):
        self.models, self.datasets = [], []

    def model(self, scripted, label):
        name = f"py_{label}_{next(_names)}"
        _flight.register_module(name, scripted)
        self.models.append(name)
        return name

    def dataset(self, train_x, train_y, test_x, test_y, num_classes, parts=None):
        name = f"py_data_{next(_names)}"
        _flight.register_dataset(name, train_x, train_y, test_x, test_y, num_classes, parts)
        self.datasets.append(name)
        return name

    def release(self):
        for name in self.models:
            _flight.unregister_module(name)
        for name in self.datasets:
            _flight.unregister_dataset(name)


def _final_model(user_model, state, resolved, output_dir):
    if user_model is not None:
        trained = copy.deepcopy(user_model)
        own = trained.state_dict()
        # The engine's names are TorchScript's named_parameters + named_buffers:
        # the same names as state_dict (plus non-persistent buffers, ignored).
        missing = [k for k in own if k not in state]
        if missing:
            raise _flight.Error(f"final model lacks {missing[:3]} of {type(user_model).__name__}")
        trained.load_state_dict({k: state[k] for k in own}, strict=True)
        return trained
    ts = resolved.get("model", {}).get("torchscript")
    path = os.path.join(output_dir, "model.pt")
    if ts and os.path.exists(path):
        return torch.jit.load(path)
    return state


def run(config, *, model=None, data=None, on_round=None, output=None, resume=False, quiet=False,
        **overrides):
    """Runs one experiment and returns a Result.

    config      a YAML path (as `flight run`) or a dict with the same keys
    model       any torch.nn.Module (scripted here) or torch.jit.ScriptModule;
                replaces the config's `model`
    data        (train, test) or {"train", "test", "num_classes"}, each (inputs,
                labels) tensors or a torch Dataset; replaces the config's dataset,
                the config's partition still splits `train` over the workers.
                Contiguous tensors are shared with the engine, never copied.
    on_round    callable(row: dict) after every round (keys: rounds.csv columns)
    output      output directory (default: the config's output.dir)
    resume      True (or a directory) to continue from the last checkpoint
    quiet       no progress line on stderr
    overrides   config keys: rounds=5, train={"lr": 0.1} (merged), train__lr=0.1

    Errors: flight.ConfigError (a ValueError) naming the file:line or key path,
    flight.ScriptError when TorchScript rejects the model, flight.Error for run
    failures. Ctrl-C stops after the current round, writes a checkpoint and
    raises KeyboardInterrupt saying how to resume.
    """
    if isinstance(resume, (str, os.PathLike)):
        output, resume = os.fspath(resume), True
    regs = _Registrations()
    scratch = tempfile.mkdtemp(prefix="flight-py-")
    topology = None
    try:
        extra = _nest(overrides)
        if model is not None:
            scripted = _script(model)
            extra["model"] = {"name": regs.model(scripted, type(model).__name__)}
        if data is not None:
            parts = getattr(data, "parts", None)  # per-worker indices (federated_fit)
            name = regs.dataset(*normalise_data(data), parts=parts)
            section = {"dataset": name}
            if parts is not None:
                section["partition"] = {"method": "given"}
            extra = _merge(extra, {"data": section})
        if isinstance(config, (str, os.PathLike)):
            if isinstance(extra.get("topology"), Topology):
                topology = extra.pop("topology")
                extra["topology"] = os.path.join(scratch, "topology.yaml")
                topology.save(extra["topology"])
            # model and data replace their sections whole (other keys of a
            # file's `model:` would not apply to the given module).
            items = [f"model={json.dumps(extra.pop('model'))}"] if "model" in extra else []
            text = _flight.load_config("path", os.fspath(config), _flatten(extra) + items, ".")
        elif isinstance(config, dict):
            cfg = _merge(config, extra)
            if isinstance(cfg.get("topology"), Topology):
                topology = cfg["topology"]
                cfg["topology"] = os.path.join(scratch, "topology.yaml")
                topology.save(cfg["topology"])
            try:
                payload = json.dumps(cfg)
            except TypeError as e:
                raise ConfigError(f"config: {e}") from e
            text = _flight.load_config("json", payload, [], os.getcwd())
        else:
            raise TypeError(f"config: expected a YAML path or a dict, got {type(config).__name__}")
        resolved = json.loads(text)
        output_dir = output or resolved["output"]["dir"]
        if topology is not None:
            # The run directory keeps its topology, so config.yaml stays runnable.
            os.makedirs(output_dir, exist_ok=True)
            resolved["topology"] = os.path.abspath(os.path.join(output_dir, "topology.yaml"))
            topology.save(resolved["topology"])
        summary_text, params, interrupt = _flight.run(json.dumps(resolved), output or "",
                                                      bool(resume), bool(quiet), on_round)
    finally:
        regs.release()
        for f in os.listdir(scratch):
            os.remove(os.path.join(scratch, f))
        os.rmdir(scratch)

    summary = json.loads(summary_text)
    summary_path = os.path.join(output_dir, "summary.json")
    if not summary.get("stopped") and os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    state = collections.OrderedDict(params)
    result = Result(read_rows(os.path.join(output_dir, "rounds.csv")), summary, output_dir,
                    _final_model(model, state, resolved, output_dir), state, resolved)
    if interrupt is not None:
        done = summary.get("rounds_completed")
        how = f"flight.run(..., resume={output_dir!r})"
        if model is None and data is None:  # nothing in memory: the CLI can continue it too
            how += f" or `flight run {output_dir}/config.yaml --resume {output_dir}`"
        err = KeyboardInterrupt(f"flight: stopped after round {done}; the checkpoint in "
                                f"{output_dir}/checkpoints continues with {how}")
        err.result = result
        raise err
    return result
