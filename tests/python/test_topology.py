"""flight.Topology: load, validate, generate, save, queries; the CLI's errors."""
import os
import subprocess

import pytest

import flight


def test_load_queries_and_save_roundtrip(tmp_path, source_dir):
    t = flight.Topology.load(os.path.join(source_dir, "configs/topologies/3tier.yaml"))
    assert t.root.kind == "coordinator"
    assert len(t.workers()) + len(t.aggregators()) + 1 == len(t)
    w = t.workers()[0]
    assert t.ancestors(w)[-1] == t.root.id
    assert t.tier(w) == t.height
    assert w in t.leaves_under(t.parent(w))
    out = tmp_path / "copy.yaml"
    t.save(str(out))
    assert flight.Topology.load(str(out)) == t


def test_generators():
    assert len(flight.Topology.flat(5).workers()) == 5
    assert flight.Topology.balanced(2, 3).nodes_per_tier() == [1, 2, 4, 8]
    t = flight.Topology.tiers([2, 4], 8, 1)
    assert t.nodes_per_tier() == [1, 2, 4, 8]


def test_errors_match_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("0: {kind: coordinator, children: [1, 2]}\n1: {kind: worker}\n")
    with pytest.raises(flight.ConfigError) as err:
        flight.Topology.load(str(bad))
    cli = subprocess.run([os.environ["FLIGHT_BINARY"], "topo", "validate", str(bad)],
                         capture_output=True, text=True)
    assert cli.returncode != 0
    assert "bad.yaml:1" in str(err.value) and "'2'" in str(err.value)
    first_line = str(err.value).splitlines()[-1].strip()
    assert first_line in cli.stderr + cli.stdout
