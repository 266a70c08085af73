"""Ctrl-C: SIGINT stops a run after the round with a checkpoint that --resume continues."""
import json
import os
import signal
import subprocess
import sys

import torch

import flight
from conftest import small_config

CHILD = r"""
import json, sys
import flight
cfg = json.loads(sys.argv[1])
def on_round(row):
    print("round", row["round"], flush=True)
try:
    flight.run(cfg, on_round=on_round, quiet=True)
except KeyboardInterrupt as e:
    print("interrupted", e.result.summary["rounds_completed"], flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def test_sigint_leaves_a_checkpoint_that_resume_continues(tmp_path):
    cfg = small_config(tmp_path, rounds=100000)  # cannot finish before the signal lands
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    for line in child.stdout:
        if line.strip() == "round 2":
            child.send_signal(signal.SIGINT)  # while the engine runs round 3 (GIL released)
            break
    rest = child.stdout.read().split()
    assert child.wait(timeout=300) == 130, rest
    stopped = int(rest[rest.index("interrupted") + 1])
    assert 2 <= stopped < 100000
    assert (out / "checkpoints" / "LATEST").exists()

    # The CLI continues it from the checkpoint, to stopped + 2 rounds ...
    resumed = subprocess.run([os.environ["FLIGHT_BINARY"], "run", str(out / "config.yaml"),
                              "--resume", str(out), "--set", f"rounds={stopped + 2}",
                              "--allow-changes", "-q"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    # ... and ends with the model of an uninterrupted run of as many rounds.
    whole = flight.run(small_config(tmp_path, rounds=stopped + 2,
                                    output={"dir": str(tmp_path / "whole")}), quiet=True)
    continued = torch.load(out / "model.pt")
    assert list(continued) == list(whole.state_dict)
    for name, t in whole.state_dict.items():
        assert torch.equal(continued[name], t), name
    with open(out / "rounds.csv") as f:
        assert len(f.readlines()) == 1 + stopped + 2
