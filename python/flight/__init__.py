"""Flight from Python: hierarchical federated learning on Flight's C++ engine.

    import flight
    result = flight.run("configs/fmnist-3tier.yaml", rounds=5)
    print(result.rows)          # per-round metrics (pandas.DataFrame when pandas imports)

`flight.run` takes the same configs as `flight run` (a YAML path, or a dict
with the same keys), any `torch.nn.Module` as `model=`, tensors or a
`torch.utils.data.Dataset` as `data=`, and an `on_round` callback. Tensors and
TorchScript modules reach the engine without copies or files: the extension
shares libtorch with Debian's python3-torch. `federated_fit` mirrors the
Python Flight reference's entry point. See docs/python.md.
"""

import torch  # noqa: F401  (loads libtorch_python, which the extension's casters need)

from ._flight import ConfigError, Error, Node, Topology
from .api import Result, ScriptError, run
from .fit import federated_fit

__all__ = [
    "ConfigError",
    "Error",
    "Node",
    "Result",
    "ScriptError",
    "Topology",
    "federated_fit",
    "run",
]
