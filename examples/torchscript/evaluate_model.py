#!/usr/bin/python3
"""Step 3: load the model Flight trained back into PyTorch and evaluate it.

    /usr/bin/python3 evaluate_model.py runs/torchscript-example/model.pt [model.pt ...]

Reads the Fashion-MNIST test set from Debian's idx files and normalises it the
way Flight does ((x/255 - 0.2860) / 0.3530), then prints each model's accuracy.
"""
import gzip
import sys

import numpy as np
import torch

ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main() -> None:
    images = read_idx(f"{ROOT}/t10k-images-idx3-ubyte.gz").astype(np.float32)
    labels = torch.from_numpy(read_idx(f"{ROOT}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x = torch.from_numpy((images / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    for path in sys.argv[1:]:
        model = torch.jit.load(path)  # a TorchScript model saved by Flight
        model.eval()
        with torch.no_grad():
            correct = sum(
                int((model(x[i : i + 1000]).argmax(1) == labels[i : i + 1000]).sum())
                for i in range(0, len(labels), 1000)
            )
        print(f"{path}: test accuracy {correct / len(labels):.4f}")


if __name__ == "__main__":
    main()
