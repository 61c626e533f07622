"""``--executor slurm`` on a real Slurm cluster (``ci/slurm-up.sh``: one node, 2 CPUs, no GPU, accounting off, so
no ``sacct``): records identical to in-process ones, ``--device cuda`` refused by a cluster without GPUs, a
``scancel``ed task, a job past its time limit, the command's wait limit and a killed ``slurmd``, each ending in
bounded time with the record that says what happened.

Skipped where ``sinfo`` does not answer. The entries are zero-cost interpolations (and the complexity track of two
baselines); one of them can be held in its first forward while a file exists, to act on a running job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from ntirekit.core.registry import discover
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from ntirekit.jobs import ExecutorSettings, run_jobs
from ntirekit.jobs.slurm import SlurmBatch
from ntirekit.jobs.spec import read_run, run_file_path
from tests.helpers.entries import write_entry
from tests.helpers.slurm import smooth_hr_folder

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = Path(os.environ.get("NTIREKIT_SLURM_DIR", "/var/tmp/ntirekit-slurm"))


def _sinfo() -> str | None:
    """The node states ``sinfo`` reports, or None when it does not answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(_sinfo() is None, reason="no Slurm cluster answers here (ci/slurm-up.sh starts one)")]

#: x4 interpolation with one gain parameter; ``hold``: a file whose presence holds the first forward (the job
#: touches ``<hold>.started`` when it gets there)
MODEL = '''
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class Interp(nn.Module):
    def __init__(self, scale=4, mode="bicubic", hold=""):
        super().__init__()
        self.scale, self.mode, self.hold = scale, mode, hold
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        if self.hold:
            Path(self.hold + ".started").touch()
            while os.path.exists(self.hold):
                time.sleep(0.2)
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode) * self.gain
'''
#: the only fields two runs may differ in (timings)
VOLATILE = ("created", "seconds", "count_seconds", "check_seconds")
NTIREKIT = str(Path(sys.executable).with_name("ntirekit"))


def interp_entry(root: Path, name: str, mode: str, hold: Path | None = None) -> None:
    folder = write_entry(root, name, model_code=MODEL, factory="model.py:Interp")
    spec = folder / "entry.toml"
    spec.write_text(spec.read_text().replace(
        "kwargs = { scale = 4 }", f'kwargs = {{ scale = 4, mode = "{mode}", hold = "{hold or ""}" }}'))


@pytest.fixture()
def hr_images(tmp_path: Path) -> Path:
    """Two small smooth HR images (an HR-only folder: the kit makes the LR with MATLAB bicubic)."""
    return smooth_hr_folder(tmp_path / "HR")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SlurmBatch, "poll_s", 1.0)
    monkeypatch.setattr(SlurmBatch, "settle_s", 2.0)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def eval_command(root: Path, data: Path, out: Path, *names: str, extra: tuple[str, ...] = ()) -> list[str]:
    """``ntirekit eval --executor slurm`` on psnr over ``data`` for the trusted entries of ``root``."""
    return [NTIREKIT, "eval", "--track", "psnr", "--allow-random", "--data", str(data), "--entries", str(root),
            "--trust", str(root), *[a for n in names for a in ("--entry", n)], "--out", str(out), "--quiet",
            "--executor", "slurm", *extra]


def records(out: Path) -> dict[str, dict]:
    return {p.name.split("__")[0]: json.loads(p.read_text()) for p in out.glob("*.json")}


def stable(rec: dict) -> dict:
    kept = {k: v for k, v in rec.items() if k not in VOLATILE}
    if isinstance(kept.get("graph"), dict):                       # the export's wall time is a timing too
        kept["graph"] = {k: v for k, v in kept["graph"].items() if k != "export_seconds"}
    return kept


def job_logs(out: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (out / ".jobs" / "submitit").rglob("*_log.err"))


def test_records_on_the_cluster_equal_in_process_ones(tmp_path: Path, hr_images: Path) -> None:
    """PSNR and counts measured as jobs equal the in-process figures field for field (timings aside), under the
    same file names; --device auto asks for no GPU and runs on this GPU-less cluster; each job's torch threads and
    fingerprint are the CPUs Slurm gave it (1 by default, 2 with --cpus-per-task 2); the parameter count is the
    network's own."""
    root = tmp_path / "entries"
    modes = {"a_nearest": "nearest", "b_bilinear": "bilinear", "c_bicubic": "bicubic"}
    for name, mode in modes.items():
        interp_entry(root, name, mode)
    registry = discover([root], include_defaults=False)
    psnr_options = EvalOptions(track="psnr", data=str(hr_images), progress=False)
    out = tmp_path / "jobs"
    psnr = {r["entry"]: r for r in run_jobs(list(registry.values()), psnr_options, out,
                                            ExecutorSettings("slurm", time_limit_min=5))}
    baselines = discover()
    counted = [baselines["rlfn_ntire"]]
    complexity = run_jobs(counted, EvalOptions(track="complexity", progress=False), out,
                          ExecutorSettings("slurm", time_limit_min=5, cpus_per_task=2))

    assert {n: r["device"]["threads"] for n, r in psnr.items()} == {n: 1 for n in modes}
    assert [r["device"]["threads"] for r in complexity] == [2]
    assert all(r["device"]["kind"] == "cpu" for r in [*psnr.values(), *complexity])
    reference = tmp_path / "in_process"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)                      # as the psnr jobs had it: same fingerprint, same file names
        in_process = run_track(list(registry.values()), psnr_options, out_dir=reference, isolate=False)
        torch.set_num_threads(2)
        in_process += run_track(counted, EvalOptions(track="complexity", progress=False), out_dir=reference,
                                isolate=False)
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in out.glob("*.json")) == sorted(p.name for p in reference.glob("*.json"))
    for path in reference.glob("*.json"):
        assert stable(json.loads((out / path.name).read_text())) == stable(json.loads(path.read_text())), path.name
    assert psnr["a_nearest"]["psnr_db"] < psnr["b_bilinear"]["psnr_db"] < psnr["c_bicubic"]["psnr_db"]
    assert {r["entry"]: r["params"] for r in complexity} == {r["entry"]: r["params"] for r in in_process
                                                            if r["track"] == "complexity"}
    assert complexity[0]["params"] == sum(p.numel() for p in baselines["rlfn_ntire"].build().parameters())


def test_device_cuda_on_a_cluster_without_gpus_is_one_line(tmp_path: Path, hr_images: Path) -> None:
    """--device cuda asks Slurm for a GPU (--device auto, above, does not): this cluster has none to give."""
    root, out = tmp_path / "entries", tmp_path / "out"
    interp_entry(root, "a_nearest", "nearest")
    done = subprocess.run([*eval_command(root, hr_images, out, "a_nearest"), "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert (done.stdout + done.stderr).strip().splitlines() == [
        "Error: sbatch refused the job array: sbatch: error: Invalid generic resource (gres) specification"]
    assert not list(out.glob("*.json"))


def test_the_jobs_take_the_submitters_weights_folder_not_slurms_export(tmp_path: Path, weights_dir: Path,
                                                                       set5_dir: Path) -> None:
    """A relative NTIREKIT_WEIGHTS on the submitting side, and Slurm handing the job a wrong one (--export): the job
    still loads the real checkpoint (the kit passes the variable, made absolute, in the job's spec), and its PSNR is
    the in-process one."""
    (tmp_path / "weights").symlink_to(weights_dir)
    data = tmp_path / "HR"
    data.mkdir()
    for name in ("bird.bmp", "head.bmp"):
        shutil.copy(set5_dir / "HR" / name, data / name)
    env = {**os.environ, "NTIREKIT_WEIGHTS": "weights", "SBATCH_EXPORT": "ALL,NTIREKIT_WEIGHTS=/nonexistent"}
    done = subprocess.run([NTIREKIT, "eval", "--track", "psnr", "--entry", "rlfn_ntire", "--data", "HR", "--out",
                           "out", "--quiet", "--executor", "slurm"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    rec = records(tmp_path / "out")["rlfn_ntire"]
    assert rec["weights"] == "pretrained" and rec["options"]["data"] == str(data)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference, = run_track([discover()["rlfn_ntire"]], EvalOptions(track="psnr", data=str(data), progress=False))
    finally:
        torch.set_num_threads(threads)
    assert rec["psnr_db"] == reference["psnr_db"] and reference["weights"] == "pretrained"


def test_scancel_mid_array_ends_the_command_and_the_rerun_submits_only_it(tmp_path: Path, hr_images: Path) -> None:
    """No accounting here: a task cancelled while the array runs ends the command in bounded time; the tasks that
    finished were merged into --out while it still ran; the cancelled one is a CANCELLED failure record, named as its
    ok record is after the rerun, which submits only it."""
    root, out, hold = tmp_path / "entries", tmp_path / "out", tmp_path / "hold"
    interp_entry(root, "a_nearest", "nearest")
    interp_entry(root, "b_held", "bicubic", hold=hold)
    interp_entry(root, "c_bicubic", "bicubic")
    hold.touch()
    command = eval_command(root, hr_images, out, "a_nearest", "b_held", "c_bicubic")
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("b_held's job reaches its forward", lambda: Path(f"{hold}.started").exists(), 120)
        wait_for("a and c merged into --out while b still runs",
                 lambda: {"a_nearest", "c_bicubic"} <= set(records(out)), 90)
        assert proc.poll() is None
        job_id = read_run(run_file_path(out / ".jobs", "b_held", "psnr", 0))["job"]["job_id"]
        subprocess.run(["scancel", job_id], check=True)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert stderr == ""                                                        # --quiet
    assert time.monotonic() - started < 180
    first = records(out)
    assert [first[n]["status"] for n in ("a_nearest", "c_bicubic")] == ["ok", "ok"]
    assert first["b_held"]["status"] == "failed" and first["b_held"]["job_state"] == "CANCELLED"
    assert first["b_held"]["error"].startswith(f"job {job_id} ended CANCELLED: it was cancelled")
    failed_name = next(out.glob("b_held__*.json")).name
    assert failed_name.replace("b_held", "a_nearest") == next(out.glob("a_nearest__*.json")).name

    kept = {n: read_run(run_file_path(out / ".jobs", n, "psnr", 0))["job"] for n in ("a_nearest", "c_bicubic")}
    hold.unlink()
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {n: read_run(run_file_path(out / ".jobs", n, "psnr", 0))["job"] for n in kept} == kept   # not again
    again = records(out)
    assert again["b_held"]["status"] == "ok" and again["b_held"]["psnr_db"] == again["c_bicubic"]["psnr_db"]
    assert sorted(p.name for p in out.glob("b_held__*.json")) == [failed_name]    # the failure replaced


def test_a_job_past_its_time_limit_is_a_timeout_record(tmp_path: Path) -> None:
    """A job held past --time-limit 1 on a timed track, the protocol's baseline (imdn_baseline) timed beside it:
    its record is TIMEOUT (the job writes it after Slurm's USR2 warning; squeue says it where the warning came during
    the start-up), not the baseline's failure, and the exit status says it failed."""
    root, out, hold = tmp_path / "entries", tmp_path / "out", tmp_path / "hold"
    interp_entry(root, "team_held", "bicubic", hold=hold)
    hold.touch()
    done = subprocess.run([NTIREKIT, "eval", "--track", "runtime", "--device", "cpu", "--entries", str(root),
                           "--trust", str(root), "--entry", "team_held", "--leaderboard", "ntire2022", "--out",
                           str(out), "--quiet", "--executor", "slurm", "--time-limit", "1"],
                          capture_output=True, text=True, timeout=240)
    hold.unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    rec = records(out)["team_held"]
    assert rec["status"] == "failed" and rec["job_state"] == "TIMEOUT", rec
    assert "ran past its time limit" in rec["error"]
    assert "imdn_baseline" not in records(out)                 # nothing timed it: no baseline record, no failure
    run = read_run(run_file_path(out / ".jobs", "team_held", "runtime", 0))
    assert run["job"]["state"] == "TIMEOUT" and [r["entry"] for r in run["records"]] == ["team_held"]


def test_the_wait_limit_ends_the_command_and_cancels_what_is_left(tmp_path: Path, hr_images: Path) -> None:
    """A job that would never end: the command stops at --wait-limit, cancels it and records why."""
    root, out, hold = tmp_path / "entries", tmp_path / "out", tmp_path / "hold"
    interp_entry(root, "a_held", "bicubic", hold=hold)
    hold.touch()
    started = time.monotonic()
    done = subprocess.run(eval_command(root, hr_images, out, "a_held", extra=("--wait-limit", "0.2")),
                          capture_output=True, text=True, timeout=120)
    hold.unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 45
    rec = records(out)["a_held"]
    assert rec["status"] == "failed" and "when the command's wait limit (0.2 min) ran out: cancelled" in rec["error"]
    job_id = rec["job_id"]
    wait_for(f"job {job_id} gone", lambda: job_id not in subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i"], capture_output=True, text=True).stdout.split(), 30)


def test_a_killed_slurmd_is_a_node_fail_record_that_nothing_overwrites_later(tmp_path: Path,
                                                                               hr_images: Path) -> None:
    """slurmd killed while a job runs: Slurm marks the node down and the job NODE_FAIL; the command ends with that
    record. The job's process lives on (its slurmstepd does): released, it finishes but leaves the recorded outcome
    alone; Slurm does not run it again (--no-requeue) when slurmd is back."""
    pid_file = SLURM_DIR / "slurmd.pid"
    if not pid_file.exists():
        pytest.skip(f"{pid_file} not found: this cluster was not started by ci/slurm-up.sh")
    root, out, hold = tmp_path / "entries", tmp_path / "out", tmp_path / "hold"
    interp_entry(root, "a_held", "bicubic", hold=hold)
    hold.touch()
    proc = subprocess.Popen(eval_command(root, hr_images, out, "a_held"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the job reaches its forward", lambda: Path(f"{hold}.started").exists(), 120)
        run_file = run_file_path(out / ".jobs", "a_held", "psnr", 0)
        job_id = read_run(run_file)["job"]["job_id"]
        os.kill(int(pid_file.read_text()), 9)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        hold.unlink()                                            # the job's process goes on from here
    try:
        assert proc.returncode == 1, stdout + stderr
        rec = records(out)["a_held"]
        assert rec["job_state"] == "NODE_FAIL"
        assert rec["error"].startswith(f"job {job_id} ended NODE_FAIL: its node was lost")
        wait_for("the orphaned job finishes and leaves the outcome alone",
                 lambda: "its outcome is already recorded (NODE_FAIL)" in job_logs(out), 60)
    finally:
        subprocess.run(["slurmd"], check=True)                  # the node comes back (ReturnToService=2)
        wait_for("the node idle again", lambda: (_sinfo() or "").strip() == "idle", 60)
    time.sleep(3)
    assert read_run(run_file)["job"]["state"] == "NODE_FAIL"
    assert records(out)["a_held"]["job_state"] == "NODE_FAIL"
    states = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"],
                            capture_output=True, text=True).stdout.split()
    assert f"{job_id}|NODE_FAIL" in states                     # not requeued
