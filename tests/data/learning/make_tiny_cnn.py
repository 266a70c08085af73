#!/usr/bin/python3
"""Makes tests/data/learning/tiny_cnn.pt, the TorchScript model Flight's tests train.

Run with Debian's python3-torch (1.13), the version Flight's libtorch matches:

    /usr/bin/python3 tests/data/learning/make_tiny_cnn.py tests/data/learning/tiny_cnn.pt

A small conv net for 1x28x28 images with a BatchNorm layer, so that the model has
buffers (running_mean, running_var, num_batches_tracked) as well as parameters.
"""
import sys

import torch
from torch import nn


class TinyCnn(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 7 * 7, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = torch.nn.functional.max_pool2d(x, 4)  # 28x28 -> 7x7
        return self.fc(torch.flatten(x, 1))


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tiny_cnn.pt"
    torch.manual_seed(0)
    model = TinyCnn()
    scripted = torch.jit.script(model)
    scripted.save(out)
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
