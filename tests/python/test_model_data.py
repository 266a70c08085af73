"""model= any nn.Module, data= tensors or Datasets, shared with the engine."""
import os

import pytest
import torch
from torch import nn

import flight
from flight import _flight
from conftest import small_config


class Blobs(nn.Module):
    """A user's own module (not a built-in): two layers and a buffer."""

    def __init__(self, features=8, classes=3):
        super().__init__()
        self.hidden = nn.Linear(features, 16)
        self.out = nn.Linear(16, classes)
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x * self.scale)))


def blobs(n, features=8, classes=3, seed=0):
    """Separable Gaussian blobs: (inputs float32 [n, features], labels int64 [n])."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, features, generator=g)
    return x.contiguous(), y


def test_custom_module_trains_and_returns_engine_weights(tmp_path):
    torch.manual_seed(0)
    module = Blobs()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    data = (blobs(600, seed=1), blobs(300, seed=2))
    r = flight.run(small_config(tmp_path, rounds=3), model=module, data=data, quiet=True)

    assert type(r.model) is Blobs  # the caller's class, with the learned weights
    trained = r.model.state_dict()
    assert set(trained) == set(r.state_dict)
    for k, v in trained.items():
        assert torch.equal(v, r.state_dict[k]), k
    # ... which are the weights the engine wrote to model.pt.
    saved = torch.jit.load(os.path.join(r.output_dir, "model.pt"))
    for k, v in saved.state_dict().items():
        assert torch.equal(v, trained[k]), k
    assert not torch.equal(trained["hidden.weight"], before["hidden.weight"])
    for k, v in module.state_dict().items():  # the caller's module is left as it was
        assert torch.equal(v, before[k]), k
    assert r.summary["final_accuracy"] > 0.6  # three separable blobs: chance is 1/3


def test_rejected_module_names_what_torchscript_rejected(tmp_path):
    class Untypable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(x) if isinstance(x, torch.Tensor) else {**x}

    with pytest.raises(flight.ScriptError, match=r"Untypable"):
        flight.run(small_config(tmp_path), model=Untypable(), data=(blobs(50), blobs(20)))


def test_zero_copy_input(tmp_path, monkeypatch):
    (x, y), test = blobs(400, seed=3), blobs(100, seed=4)
    registered = []
    real = _flight.register_dataset

    def capture(name, *args):
        registered.append(name)
        return real(name, *args)

    monkeypatch.setattr(_flight, "register_dataset", capture)
    seen = []

    def on_round(row):
        # Mid-run: the tensors the engine's workers read for this dataset.
        seen.append(_flight.dataset_tensors(registered[0]))

    flight.run(small_config(tmp_path), model=Blobs(), data={"train": (x, y), "test": test},
               on_round=on_round, quiet=True)
    assert len(seen) == 2
    train_x, train_y, test_x, test_y = seen[0]
    assert train_x.data_ptr() == x.data_ptr() and train_y.data_ptr() == y.data_ptr()
    assert test_x.data_ptr() == test[0].data_ptr() and test_y.data_ptr() == test[1].data_ptr()
    # A TensorDataset is shared the same way.
    ds = torch.utils.data.TensorDataset(x, y)
    from flight.api import normalise_data
    tx, ty, *_ = normalise_data((ds, test))
    assert tx.data_ptr() == x.data_ptr() and ty.data_ptr() == y.data_ptr()


def test_partitioner_applies_to_given_tensors(tmp_path):
    (x, y), test = blobs(400, seed=5), blobs(100, seed=6)
    cfg = small_config(tmp_path)
    cfg["data"] = {"partition": {"method": "shards", "shards_per_worker": 1}}
    r = flight.run(cfg, model=Blobs(), data=((x, y), test), quiet=True)
    import csv
    with open(os.path.join(r.output_dir, "tasks.csv")) as f:
        samples = [int(t["samples"]) for t in csv.DictReader(f) if t["kind"] == "train"]
    assert samples and all(s == 100 for s in samples)  # 400 samples, 4 workers, 1 shard each


def test_map_style_dataset_and_int32_labels(tmp_path):
    (x, y), (tx, ty) = blobs(200, seed=7), blobs(60, seed=8)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return x[i], int(y[i])

    r = flight.run(small_config(tmp_path, rounds=1), model=Blobs(),
                   data=(Pairs(), (tx, ty.int())), quiet=True)
    assert r.summary["rounds_completed"] == 1


def test_federated_fit_with_reference_shaped_data(tmp_path):
    (x, y), test = blobs(300, seed=9), blobs(90, seed=10)
    dataset = torch.utils.data.TensorDataset(x, y)

    class FederatedSubsets:  # the reference's shape: a dataset + indices per worker id
        def __init__(self, dataset, indices):
            self.dataset, self.indices = dataset, indices

    topo = flight.Topology.tiers([2], 4, 0)
    workers = topo.workers()
    indices = {w: list(range(i, 300, 4)) for i, w in enumerate(workers)}
    indices[workers[0]] = indices[workers[0]][:10]  # uneven, as given
    module, records = flight.federated_fit(
        topo, Blobs(), FederatedSubsets(dataset, indices), rounds=2, strategy="fedavg",
        strategy_params={"participation_frac": 1.0}, test_data=test,
        train={"batch_size": 10, "max_steps": 3}, output=str(tmp_path / "fit"))
    assert type(module) is Blobs
    assert len(records) == 2 and records[-1]["returned"] == 4
    import csv
    with open(tmp_path / "fit" / "tasks.csv") as f:
        by_node = {t["node"]: int(t["samples"]) for t in csv.DictReader(f) if t["kind"] == "train"}
    assert by_node == {w: len(indices[w]) for w in workers}
    with pytest.raises(flight.ConfigError, match=r"not a worker"):
        flight.federated_fit(topo, Blobs(), FederatedSubsets(dataset, {"nobody": [1]}),
                             output=str(tmp_path / "bad"))
