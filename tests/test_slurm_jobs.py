"""The job side of ``--executor slurm`` and the watcher's edges, without a cluster: Slurm's signals inside a job (the
time-limit warning then SIGTERM, a bare SIGTERM, a restart), threads from the allocation, what travels to a job
absolute, the signal delay against the time limit, and a squeue that forgets or never answers (stand-in tools)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from ntirekit.core.records import record_path
from ntirekit.core.registry import discover
from ntirekit.eval.track import EvalOptions
from ntirekit.jobs import ExecutorSettings, run_jobs
from ntirekit.jobs.collect import job_outcome
from ntirekit.jobs.run import job_options
from ntirekit.jobs.settings import JOB_STARTUP_S
from ntirekit.jobs.slurm import SlurmBatch, signal_delay_s
from ntirekit.jobs.spec import JobSpec, JobStopped, allocated_cpus, job_variables, read_run, run_file_path, run_job
from tests.helpers.entries import write_entry
from tests.helpers.slurm import smooth_hr_folder, stand_in_tool

#: x4 interpolation whose first forward sends its own process the signals named in ``signals`` (as Slurm would)
SIGNALLING_MODEL = '''
import os
import signal

import torch.nn.functional as F
import torch
from torch import nn


class Interp(nn.Module):
    def __init__(self, scale=4, signals=""):
        super().__init__()
        self.scale, self.signals = scale, [s for s in signals.split(",") if s]
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        for name in self.signals:
            os.kill(os.getpid(), getattr(signal, "SIG" + name))
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic") * self.gain
'''


def signalling_entry(root: Path, name: str, signals: str = "") -> None:
    folder = write_entry(root, name, model_code=SIGNALLING_MODEL, factory="model.py:Interp")
    spec = folder / "entry.toml"
    spec.write_text(spec.read_text().replace("kwargs = { scale = 4 }",
                                             f'kwargs = {{ scale = 4, signals = "{signals}" }}'))


@pytest.fixture()
def hr_images(tmp_path: Path) -> Path:
    return smooth_hr_folder(tmp_path / "HR", count=1, size=32)


@pytest.fixture()
def in_a_slurm_job():
    """This process as a Slurm job given 1 CPU (job 77); torch's threads and the whole environment (which a job
    changes: thread variables, its NTIREKIT_* ones) restored after."""
    threads, environ = torch.get_num_threads(), dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "SLURM_ARRAY_JOB_ID",
                 "SLURM_RESTART_COUNT"):
        os.environ.pop(name, None)
    os.environ.update({"SLURM_JOB_ID": "77", "SLURM_CPUS_PER_TASK": "1", "SLURM_CPUS_ON_NODE": "1"})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)


def _spec(tmp_path: Path, hr_images: Path, entry: str, baseline: str | None = None) -> JobSpec:
    registry = discover([tmp_path / "entries"], include_defaults=False)
    options = job_options(EvalOptions(track="psnr", data=str(hr_images), device="auto"))
    return JobSpec(registry[entry], 0, options, run_file_path(tmp_path / "jobs", entry, "psnr", 0),
                   registry[baseline] if baseline else None)


def test_sigterm_after_the_warning_is_a_timeout_record_not_the_baselines_failure(
        tmp_path: Path, hr_images: Path, in_a_slurm_job: None) -> None:
    signalling_entry(tmp_path / "entries", "team", signals="USR2,TERM")
    signalling_entry(tmp_path / "entries", "baseline")
    spec = _spec(tmp_path, hr_images, "team", baseline="baseline")
    with pytest.raises(JobStopped):
        run_job(spec)
    run = read_run(spec.run_file)
    assert run["job"]["state"] == "TIMEOUT" and run["job"]["job_id"] == "77"
    assert [r["entry"] for r in run["records"]] == ["team"]           # the baseline never ran: no failure of its own
    rec = run["records"][0]
    assert rec["status"] == "failed" and rec["job_state"] == "TIMEOUT" and rec["failure_kind"] == "job"
    assert rec["error"] == "job 77 ended TIMEOUT: it ran past its time limit (stopped by Slurm after its warning)"
    assert rec["device"]["threads"] == 1 == run["job"]["threads"]     # the allocation's one CPU
    assert os.environ["OMP_NUM_THREADS"] == "1"                       # and the isolated children's
    name = record_path(tmp_path, rec).name                            # named as its ok record would be
    assert re.fullmatch(r"team__psnr__HR-[0-9a-f]{8}\.challenge__cpu-.*-t1-.*\.json", name), name


def test_a_bare_sigterm_stops_the_job_and_the_schedulers_state_names_it(tmp_path: Path, hr_images: Path,
                                                                       in_a_slurm_job: None) -> None:
    """scancel (no warning before): the job stops with nothing but its start recorded; the collector files the
    scheduler's CANCELLED under the fingerprint the job started with."""
    signalling_entry(tmp_path / "entries", "team", signals="TERM")
    spec = _spec(tmp_path, hr_images, "team")
    with pytest.raises(JobStopped):
        run_job(spec)
    started = read_run(spec.run_file)
    assert started["records"] == [] and started["job"]["device"]["threads"] == 1

    class Paths:
        result_pickle = tmp_path / "no-result.pkl"

    class Job:
        job_id, paths, state = "77", Paths(), "UNKNOWN"

        def stderr(self) -> str:
            return ""

    rec = job_outcome(spec, Job(), "CANCELLED", threads=4)["records"][0]
    assert rec["job_state"] == "CANCELLED" and rec["error"] == "job 77 ended CANCELLED: it was cancelled"
    assert rec["device"] == started["job"]["device"]                  # not the 4 CPUs of the fallback
    assert rec["options"]["data"] == str(hr_images) and rec["split"] is None and rec["protocol"] == "challenge"


def test_a_job_started_again_by_slurm_does_nothing(tmp_path: Path, hr_images: Path, in_a_slurm_job: None) -> None:
    signalling_entry(tmp_path / "entries", "team")
    spec = _spec(tmp_path, hr_images, "team")
    os.environ["SLURM_RESTART_COUNT"] = "1"
    assert run_job(spec) is None and not spec.run_file.exists()


def test_a_job_leaves_an_outcome_recorded_for_it_alone(tmp_path: Path, hr_images: Path, in_a_slurm_job: None,
                                                       capsys: pytest.CaptureFixture) -> None:
    signalling_entry(tmp_path / "entries", "team")
    spec = _spec(tmp_path, hr_images, "team")
    lost = {"job": {"job_id": "77", "state": "NODE_FAIL"}, "records": [{"entry": "team", "status": "failed"}]}
    spec.run_file.parent.mkdir(parents=True)
    spec.run_file.write_text(json.dumps(lost))
    assert run_job(spec) is None
    assert json.loads(spec.run_file.read_text()) == lost
    assert "its outcome is already recorded (NODE_FAIL)" in capsys.readouterr().err


def test_threads_come_from_the_allocation() -> None:
    cores = len(os.sched_getaffinity(0))
    assert allocated_cpus({"SLURM_CPUS_PER_TASK": "1", "SLURM_JOB_ID": "5"}) == 1
    assert allocated_cpus({"SLURM_JOB_ID": "5", "SLURM_CPUS_ON_NODE": "1"}) == 1       # no --cpus-per-task
    assert allocated_cpus({"SLURM_CPUS_PER_TASK": "64", "SLURM_JOB_ID": "5"}) == min(64, cores)
    assert allocated_cpus({"SLURM_CPUS_ON_NODE": "1"}) is None                          # not in a job
    assert allocated_cpus({}) is None


def test_paths_and_variables_travel_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "HR").mkdir()
    found = job_variables({"NTIREKIT_WEIGHTS": f"w{os.pathsep}/abs/w2", "NTIREKIT_DCN": "torch", "HOME": "/root",
                           "NTIREKIT_UNTRUSTED_ROOTS": "subs"})
    assert found == {"NTIREKIT_WEIGHTS": f"{tmp_path / 'w'}{os.pathsep}/abs/w2", "NTIREKIT_DCN": "torch",
                     "NTIREKIT_UNTRUSTED_ROOTS": str(tmp_path / "subs")}
    options = job_options(EvalOptions(track="psnr", data="HR", device="cuda:1", weights={"a": "w/a.pth"}, runs=3))
    assert (options.data, options.weights, options.device, options.runs, options.progress) == (
        str(tmp_path / "HR"), {"a": str(tmp_path / "w" / "a.pth")}, "cuda", 1, False)
    assert job_options(EvalOptions(track="psnr", data="sample")).data == "sample"       # a named set stays a name


def test_the_warning_comes_after_the_start_up_and_before_the_limit() -> None:
    """Slurm sends USR2 between D+30 and D seconds before the limit (it looks every 30 s)."""
    for minutes in range(1, 200):
        delay = signal_delay_s(minutes)
        assert 1 <= delay <= 90
        earliest = 60 * minutes - delay - 30
        assert earliest >= JOB_STARTUP_S or delay == 1                  # 1 min: as late as Slurm allows
    assert signal_delay_s(1) == 1 and signal_delay_s(120) == 90


@pytest.mark.parametrize("squeue, expected", [
    ("exit 1\n", "was still UNKNOWN when the command's wait limit (0.02 min) ran out: cancelled"),
    ("exit 0\n", "ended UNKNOWN: it ended without a result (the scheduler no longer knows its state)"),
], ids=["squeue never answers", "squeue forgot the job"])
def test_the_command_ends_whatever_squeue_says(tmp_path: Path, hr_images: Path, monkeypatch: pytest.MonkeyPatch,
                                              squeue: str, expected: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in_tool(bin_dir, "sbatch", 'echo "Submitted batch job 4243"\n')
    stand_in_tool(bin_dir, "srun", "exit 0\n")
    stand_in_tool(bin_dir, "scancel", f'echo "$@" >> {tmp_path}/cancelled\n')
    stand_in_tool(bin_dir, "squeue", squeue)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(SlurmBatch, "poll_s", 0.05)
    monkeypatch.setattr(SlurmBatch, "settle_s", 0.2)
    signalling_entry(tmp_path / "entries", "team")
    entry = discover([tmp_path / "entries"], include_defaults=False)["team"]
    settings = ExecutorSettings("slurm", time_limit_min=5, wait_limit_min=0.02)
    rec, = run_jobs([entry], EvalOptions(track="psnr", data=str(hr_images), progress=False), tmp_path / "out",
                    settings)
    assert rec["status"] == "failed" and rec["job_id"] == "4243" and expected in rec["error"], rec["error"]
    cancelled = (tmp_path / "cancelled").read_text().split() if (tmp_path / "cancelled").exists() else []
    assert cancelled == (["4243"] if "wait limit" in expected else [])


def test_a_time_limit_shorter_than_a_jobs_start_up_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ntirekit.cli import main

    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--entry", "rlfn_ntire", "--out", str(tmp_path),
                                       "--executor", "slurm", "--time-limit", "0"])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        f"Error: --time-limit must be at least 1 minute, not 0: a job's start-up alone takes up to {JOB_STARTUP_S} s"]
    assert not list(tmp_path.iterdir())
