"""flight.run from a YAML path and from a dict: same engine, same errors."""
import json
import os
import subprocess

import pytest
import torch

import flight
from conftest import small_config


def write_yaml(path, cfg):
    # JSON is YAML: the file holds exactly the dict's keys and values.
    path.write_text(json.dumps(cfg, indent=2))
    return str(path)


def test_dict_config_equals_yaml_run_bit_for_bit(tmp_path):
    cfg = small_config(tmp_path)
    cfg["output"]["dir"] = str(tmp_path / "from-yaml")
    from_yaml = flight.run(write_yaml(tmp_path / "exp.yaml", cfg), quiet=True)
    cfg["output"]["dir"] = str(tmp_path / "from-dict")
    from_dict = flight.run(cfg, quiet=True)

    assert from_yaml.summary["rounds_completed"] == 2
    assert list(from_yaml.state_dict) == list(from_dict.state_dict)
    for name, t in from_yaml.state_dict.items():
        assert torch.equal(t, from_dict.state_dict[name]), name
    rows_a = from_yaml.rows if isinstance(from_yaml.rows, list) else from_yaml.rows.to_dict("records")
    rows_b = from_dict.rows if isinstance(from_dict.rows, list) else from_dict.rows.to_dict("records")
    assert [r["test_accuracy"] for r in rows_a] == [r["test_accuracy"] for r in rows_b]
    assert [r["test_loss"] for r in rows_a] == [r["test_loss"] for r in rows_b]
    # The resolved configs differ only where they were written.
    a, b = dict(from_yaml.config), dict(from_dict.config)
    a.pop("output"), b.pop("output")
    assert a == b


def test_overrides_apply_to_both_forms(tmp_path):
    cfg = small_config(tmp_path)
    path = write_yaml(tmp_path / "exp.yaml", cfg)
    r = flight.run(path, rounds=1, train={"lr": 0.01}, output=str(tmp_path / "o"), quiet=True)
    assert r.config["rounds"] == 1 and r.config["train"]["lr"] == 0.01
    assert r.config["train"]["max_steps"] == 5  # merged, not replaced
    assert r.summary["rounds_completed"] == 1
    assert len(r.rows) == 1


def test_errors_name_the_key_path(tmp_path):
    cfg = small_config(tmp_path)
    cfg["train"]["lr"] = "fast"
    with pytest.raises(flight.ConfigError, match=r"train\.lr"):
        flight.run(cfg)
    with pytest.raises(ValueError, match=r"train\.lr"):  # ConfigError is a ValueError
        flight.run(small_config(tmp_path), train__lr=-1.0)
    with pytest.raises(flight.ConfigError, match=r"unknown key 'rouns'.*did you mean 'rounds'"):
        flight.run(small_config(tmp_path, rouns=3))
    bad = small_config(tmp_path)
    bad["data"]["partition"] = {"method": "dirichlet", "alpha": 0}
    with pytest.raises(flight.ConfigError, match=r"partition\.alpha"):
        flight.run(bad)


def test_yaml_errors_are_the_clis(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntopology: {generate: flat, workers: 2}\nrounds: 2\ntrain:\n  lr: fast\n")
    with pytest.raises(flight.ConfigError, match=r"bad\.yaml:\d+: .*train\.lr") as err:
        flight.run(str(path))
    cli = subprocess.run([os.environ["FLIGHT_BINARY"], "run", str(path)], capture_output=True,
                         text=True)
    assert cli.returncode == 2
    assert str(err.value) in cli.stderr


def test_async_mode_and_file_connector_from_python(tmp_path):
    cfg = small_config(tmp_path, mode="async", strategy={"name": "fedasync"},
                       data_plane={"connector": {"kind": "file", "dir": str(tmp_path / "objects")}})
    cfg["async"] = {"max_updates": 6, "eval_every": 3, "aggregator_buffer": 1}
    rows = []
    r = flight.run(cfg, on_round=rows.append, quiet=True)
    assert r.summary["updates_merged"] >= 6
    assert rows and rows[-1]["returned"] == r.summary["updates_merged"]
    assert len(r.rows) == len(rows)
