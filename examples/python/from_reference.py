#!/usr/bin/python3
"""Moving from the Python Flight reference: federated_fit with the same shape.

The reference's call

    module, records = federated_fit(topology, module, FederatedSubsets(dataset, indices),
                                    rounds=5, strategy="fedavg")

runs unchanged here: a topology file in the reference's format, any
nn.Module, one dataset plus per-worker sample indices (the workers' data as
given, no partitioner), rounds and a strategy name. docs/python.md maps every
argument.
"""
import os

import torch
from torch import nn

import flight

HERE = os.path.dirname(os.path.abspath(__file__))


class FederatedSubsets:
    """The reference's data shape: one dataset and {worker id: sample indices}."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5)
        self.fc = nn.Linear(8 * 12 * 12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


def fashion_mnist(split: str, n: int):
    """The first n Fashion-MNIST images of a split, as float tensors (Debian's files)."""
    import gzip
    import numpy as np
    root = "/usr/share/datasets/fashion-mnist"
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(f"{root}/{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open(f"{root}/{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    x = (torch.from_numpy(images.astype(np.float32)) / 255 - 0.286) / 0.353
    return torch.utils.data.TensorDataset(x, torch.from_numpy(labels.astype(np.int64)))


if __name__ == "__main__":
    topology = flight.Topology.load(os.path.join(HERE, "../../configs/topologies/3tier-small.yaml"))
    train = fashion_mnist("train", 12000)
    # Each worker's indices, as the reference's federated_split would hand them over.
    workers = topology.workers()
    indices = {w: list(range(i, len(train), len(workers))) for i, w in enumerate(workers)}

    torch.manual_seed(0)
    module, records = flight.federated_fit(
        topology, SmallCNN(), FederatedSubsets(train, indices), rounds=5, strategy="fedavg",
        strategy_params={"participation_frac": 0.5}, test_data=fashion_mnist("test", 2000),
        output="runs/from-reference")
    for r in records:
        print(f"round {r['round']}: test accuracy {r['test_accuracy']:.3f}")
    print(f"trained {type(module).__name__}; outputs in runs/from-reference")
