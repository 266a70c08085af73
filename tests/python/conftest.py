"""Shared fixtures of the Python tests (run by CTest: `python_tests`).

Runs are kept small (a few workers, max_steps, 2-3 rounds, synthetic data or
Fashion-MNIST slices): the test machine is shared.
"""
import os

import pytest

SOURCE_DIR = os.environ.get(
    "FLIGHT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def small_config(tmp_path, **extra):
    """A small synthetic-data experiment as a dict (the keys of a YAML config)."""
    cfg = {
        "name": "py-small",
        "seed": 3,
        "topology": {"generate": "tiers", "aggregators": [2], "workers": 4},
        "model": {"name": "mlp", "options": {"hidden": [16]}},
        "data": {"dataset": "synthetic", "synthetic_samples": 800,
                 "synthetic_test_samples": 200, "partition": {"method": "dirichlet", "alpha": 1.0}},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.05, "max_steps": 5},
        "strategy": {"name": "fedavg", "participation": 1.0},
        "rounds": 2,
        "threads": 2,
        "output": {"dir": str(tmp_path / "run")},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def source_dir():
    return SOURCE_DIR
