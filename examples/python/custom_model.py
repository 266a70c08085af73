#!/usr/bin/python3
"""A user's own torch.nn.Module and dataset, trained federated by Flight's engine.

The module is scripted inside flight.run (torch.jit.script) and handed to the
engine in memory; the tensors are shared with the engine (no copy). The
config's partitioner (here Dirichlet label skew) splits the training set over
the workers, and the result carries the same module class with the learned
weights.
"""
import torch
from torch import nn

import flight


class SpiralNet(nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def spirals(n: int, classes: int = 3, seed: int = 0):
    """Interleaved 2-D spirals: (points float32 [n, 2], labels int64 [n])."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    r = torch.rand(n, generator=g)
    angle = r * 4.0 + y * (2 * torch.pi / classes) + 0.2 * torch.randn(n, generator=g)
    return torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1), y


config = {
    "name": "spirals",
    "seed": 1,
    "topology": {"generate": "tiers", "aggregators": [2], "workers": 8},
    "data": {"partition": {"method": "dirichlet", "alpha": 0.5}},
    "train": {"epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 0.01},
    "strategy": {"name": "fedavg", "participation": 0.75},
    "rounds": 15,
    "output": {"dir": "runs/spirals"},
}

if __name__ == "__main__":
    torch.manual_seed(0)
    result = flight.run(config, model=SpiralNet(), data=(spirals(6000, seed=1), spirals(1000, seed=2)),
                        quiet=True,
                        on_round=lambda r: print(f"round {r['round']:2d}  accuracy {r['test_accuracy']:.3f}"))
    model = result.model  # a SpiralNet with the federated weights
    x, y = spirals(1000, seed=3)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"{type(model).__name__} on fresh points: accuracy {acc:.3f}; run in {result.output_dir}")
