#!/usr/bin/python3
"""Step 1: define a model in PyTorch and export it as TorchScript for Flight.

    /usr/bin/python3 export_model.py model.pt

Any nn.Module that torch.jit.script accepts works, as long as forward takes a
float batch [N, 1, 28, 28] (Fashion-MNIST) and returns logits [N, classes].
Parameters and buffers (e.g. BatchNorm statistics) are what Flight trains and
aggregates; they keep their Python names (conv1.weight, bn1.running_mean, ...).
"""
import sys

import torch
from torch import nn


class FashionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "model.pt"
    torch.manual_seed(0)
    torch.jit.script(FashionNet()).save(out)
    print(f"exported {out}")
