"""federated_fit: the Python Flight reference's entry point, on the C++ engine.

    module, records = flight.federated_fit(topology, MyNet(), FederatedSubsets(ds, indices),
                                           rounds=10, strategy="fedavg")

The reference's data argument is one dataset plus a mapping node id -> sample
indices (its FederatedSubsets); here those lists become the workers'
partitions (partition method `given`), and the dataset's tensors are shared
with the engine. docs/python.md maps every argument.
"""

import json
import os

import torch

from ._flight import ConfigError, Topology
from .api import _split, run

# The reference's strategy_params names -> ours (strategy options).
_STRATEGY_ALIASES = {"participation_frac": "participation"}


def _topology(topology):
    if isinstance(topology, Topology):
        return topology
    if isinstance(topology, (str, os.PathLike)):
        return Topology.load(os.fspath(topology))
    if isinstance(topology, dict):
        return Topology.parse_json(json.dumps({str(k): v for k, v in topology.items()}), "<dict>")
    raise TypeError(f"topology: expected a Topology, a file path or a dict, got "
                    f"{type(topology).__name__}")


def _subsets(data):
    """(dataset, {node id: indices}) from the reference's data shapes."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[1], dict):
        return data[0], data[1]
    for attr in ("indices", "node_indices"):
        if hasattr(data, "dataset") and isinstance(getattr(data, attr, None), dict):
            idx = getattr(data, attr)
            # Newer reference versions key by Node objects with an `idx`.
            return data.dataset, {getattr(k, "idx", k): v for k, v in idx.items()}
    if isinstance(data, dict) and data and all(
            isinstance(v, torch.utils.data.Subset) for v in data.values()):
        bases = {id(v.dataset) for v in data.values()}
        if len(bases) != 1:
            raise ConfigError("data: the Subsets must share one dataset")
        first = next(iter(data.values()))
        return first.dataset, {k: list(v.indices) for k, v in data.items()}
    raise TypeError("data: expected FederatedSubsets-like (dataset + indices per worker), "
                    "(dataset, {node: indices}) or {node: torch.utils.data.Subset}")


def federated_fit(topology, module, data, rounds=1, strategy="fedsgd", mode="sync",
                  fast_dev_run=False, *, strategy_params=None, test_data=None, train=None,
                  seed=0, output=None, on_round=None, quiet=True, **config):
    """Trains `module` over `topology` with the workers' given data; returns
    (trained module, records) like the reference.

    topology         flight.Topology, a topology file (the reference's YAML/JSON
                     load unchanged) or a dict of nodes
    module           any torch.nn.Module (scripted with torch.jit.script)
    data             one dataset with per-worker indices: an object with
                     `dataset` and `indices` (the reference's FederatedSubsets),
                     (dataset, {node id: [indices]}) or {node id: Subset}
    rounds           rounds of federation
    strategy         strategy name (fedavg, fedsgd, fedprox, fedadam, ...; async:
                     fedasync, fedbuff)
    mode             "sync" or "async"
    fast_dev_run     one round without training (checks the wiring)
    strategy_params  strategy options ({"participation": 0.5}; the reference's
                     participation_frac is accepted)
    test_data        (inputs, labels) or a Dataset to evaluate on; default: the
                     whole training dataset (so accuracy is training accuracy)
    train            training options ({"epochs": 1, "batch_size": 32, "lr": 0.05})
    seed, output, on_round, quiet, **config: as in flight.run / the YAML file

    records is a list of dicts, one per round (the columns of rounds.csv).
    """
    topo = _topology(topology)
    dataset, indices = _subsets(data)
    workers = topo.workers()
    position = {w: i for i, w in enumerate(workers)}
    parts = [[] for _ in workers]
    for node, idx in indices.items():
        key = str(node)
        if key not in position:
            raise ConfigError(f"data: indices for '{key}', which is not a worker of the topology "
                              f"({len(workers)} workers: {', '.join(workers[:5])}...)")
        parts[position[key]] = [int(i) for i in idx]
    train_x, train_y = _split(dataset, "train")
    test_x, test_y = _split(test_data, "test") if test_data is not None else (train_x, train_y)
    params = {_STRATEGY_ALIASES.get(k, k): v for k, v in (strategy_params or {}).items()}
    cfg = {
        "name": config.pop("name", "federated-fit"),
        "seed": seed,
        "topology": topo,
        "rounds": 1 if fast_dev_run else rounds,
        "mode": mode,
        "strategy": {"name": strategy, **params},
        "data": {"partition": {"method": "given"}},
        "debug": bool(fast_dev_run),
    }
    if train:
        cfg["train"] = dict(train)
    if mode == "async":
        cfg.setdefault("async", {})
    cfg.update(config)
    result = run(cfg, model=module, on_round=on_round, output=output, quiet=quiet,
                 data=_GivenData(train_x, train_y, test_x, test_y, parts))
    rows = result.rows
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    return result.model, records


class _GivenData(tuple):
    """data= carrying the workers' index lists (partition method `given`)."""

    def __new__(cls, train_x, train_y, test_x, test_y, parts):
        self = super().__new__(cls, ((train_x, train_y), (test_x, test_y)))
        self.parts = parts
        return self
