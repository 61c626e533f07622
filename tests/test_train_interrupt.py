"""A training run leaves a resumable checkpoint and its best weights whatever --steps is: on a wall-time schedule,
and when stopped with Ctrl-C (SIGINT) or SIGTERM; --resume continues from the step it stopped at."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ntirekit.data.images import write_image
from ntirekit.train.loop import BEST_WEIGHTS, CHECKPOINT, TrainConfig, Trainer
from tests.helpers.entries import write_entry

REPO = Path(__file__).resolve().parents[1]


class _Source:
    """Toy batches; raises at ``fail_at`` (a run killed mid-way: nothing after it runs)."""

    def __init__(self, fail_at: int | None = None):
        self.fail_at, self.drawn = fail_at, 0

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        self.drawn += 1
        if self.drawn == self.fail_at:
            raise RuntimeError("killed")
        x = torch.from_numpy(rng.standard_normal((2, 3, 5, 5))).float()
        return x, x.flip(1)


def test_a_wall_time_schedule_saves_whatever_the_step_schedule(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trainer = Trainer(nn.Conv2d(3, 3, 1), _Source(fail_at=4), nn.functional.l1_loss,
                      TrainConfig(steps=1000, ckpt_every=1000, val_every=1000, progress=False, save_every_s=0.0),
                      ckpt_dir=tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        trainer.run()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["step"] == 3                                   # saved after every step: nothing lost but step 4
    best = torch.load(tmp_path / BEST_WEIGHTS, weights_only=True)   # a plain state dict, no pickled code
    assert set(best) == {"weight", "bias"} and torch.equal(best["weight"], state["model"]["weight"])


def _hr_folder(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(folder / f"im{i}.png", (rng.random((96, 96, 3)) * 255).astype(np.uint8))
    return folder


@pytest.mark.slow                                               # two interpreters per signal: ~10 s
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_train_mid_way_keeps_weights_and_resume_continues(tmp_path: Path, signum: int) -> None:
    entries = tmp_path / "entries"
    write_entry(entries, "tiny")
    ckpt = tmp_path / "ckpt"
    steps = 100_000                                             # far more than the seconds this test waits
    command = [sys.executable, "-c", "from ntirekit.cli import main; main()", "train", "tiny", "--entries", str(entries),
               "--trust", str(entries), "--data",
               str(_hr_folder(tmp_path / "hr")), "--val", "none", "--steps", str(steps), "--batch-size", "4",
               "--patch", "16", "--ckpt-dir", str(ckpt), "--out", str(tmp_path / "out"), "--no-progress",
               "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:                                    # the ETA line comes after its first steps
        lines.append(line)
        if re.match(r"step \d+/100000: [\d.]+ s per step, about .* to go", line):
            proc.send_signal(signum)
            break
    output = "".join(lines) + proc.stdout.read()
    code = proc.wait(timeout=120)
    assert code == (130 if signum == signal.SIGINT else 143), output
    stopped = re.search(rf"stopped by {signal.Signals(signum).name} at step (\d+) of {steps}", output)
    assert stopped, output
    step = int(stopped.group(1))
    assert 3 <= step < steps and "final loss" in output
    state = torch.load(ckpt / CHECKPOINT, weights_only=True)
    assert state["step"] == step                                # the checkpoint is the step it stopped at
    best = torch.load(ckpt / BEST_WEIGHTS, weights_only=True)   # without validation: the latest weights
    assert all(torch.equal(best[k], state["model"][k]) for k in state["model"])
    assert not (tmp_path / "out").exists()                      # an unfinished run writes no entry folder

    # --resume continues from that step (stopped again at once: it must report a step past the first stop)
    proc = subprocess.Popen([*command, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step ") and "s per step" in line:
            proc.send_signal(signal.SIGTERM)
            break
    output = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=120) == 143, output
    assert f"resumed from {ckpt / CHECKPOINT} at step {step}" in output
    again = int(re.search(r"stopped by SIGTERM at step (\d+)", output).group(1))  # type: ignore[union-attr]
    assert again > step and torch.load(ckpt / CHECKPOINT, weights_only=True)["step"] == again
