"""Entries as submitit jobs: the local executor gives the records of an in-process run, a killed job becomes a failure
that the rerun completes, and ``--executor slurm`` submits the expected job array (checked with stand-in Slurm tools,
no cluster needed)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ntirekit.cli import main
from ntirekit.core.registry import discover
from ntirekit.jobs import ExecutorSettings, run_jobs
from ntirekit.jobs.spec import read_run, run_file_path
from ntirekit.eval.runner import run_track
from ntirekit.eval.track import EvalOptions
from tests.helpers.entries import write_entry
from tests.helpers.slurm import smooth_hr_folder, stand_in_tool

pytestmark = pytest.mark.slow

#: zero-cost x4 models (interpolation with one gain parameter); ``kill_marker``: SIGKILL its own process on the
#: first forward unless the marker file exists (a job killed part-way, as the OOM killer or a pre-emption does)
INTERP_MODEL = '''
import os
import signal

import torch
import torch.nn.functional as F
from torch import nn


class Interp(nn.Module):
    def __init__(self, scale=4, mode="bicubic", kill_marker=""):
        super().__init__()
        self.scale, self.mode, self.kill_marker = scale, mode, kill_marker
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        if self.kill_marker and not os.path.exists(self.kill_marker):
            open(self.kill_marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode) * self.gain
'''

VOLATILE = ("created", "seconds")       # the only fields that may differ between two runs of the psnr track


def interp_entry(root: Path, name: str, mode: str, kill_marker: str = "") -> None:
    folder = write_entry(root, name, model_code=INTERP_MODEL, factory="model.py:Interp")
    spec = folder / "entry.toml"
    spec.write_text(spec.read_text().replace(
        "kwargs = { scale = 4 }", f'kwargs = {{ scale = 4, mode = "{mode}", kill_marker = "{kill_marker}" }}'))


@pytest.fixture()
def hr_images(tmp_path: Path) -> Path:
    """Two small smooth HR images (an HR-only folder: the kit makes the LR with MATLAB bicubic)."""
    return smooth_hr_folder(tmp_path / "HR")


def _stable(path: Path) -> dict:
    rec = json.loads(path.read_text())
    return {k: v for k, v in rec.items() if k not in VOLATILE}


def test_local_jobs_match_in_process_and_a_killed_job_is_rerun(tmp_path: Path, hr_images: Path) -> None:
    root = tmp_path / "entries"
    modes = {"a_nearest": "nearest", "b_bilinear": "bilinear", "c_bicubic": "bicubic"}
    for name, mode in modes.items():
        interp_entry(root, name, mode)
    marker = tmp_path / "killed-once"
    interp_entry(root, "d_killed", "bicubic", kill_marker=str(marker))
    registry = discover([root], include_defaults=False)
    entries = list(registry.values())
    options = EvalOptions(track="psnr", data=str(hr_images), device="cpu", progress=False)
    settings = ExecutorSettings("local", max_parallel=4, time_limit_min=5)
    out = tmp_path / "jobs_out"

    first = {r["entry"]: r for r in run_jobs(entries, options, out, settings)}
    assert [first[n]["status"] for n in modes] == ["ok"] * 3
    killed = first["d_killed"]
    assert killed["status"] == "failed" and killed["failure_kind"] == "job" and marker.exists()
    assert "was killed" in killed["error"], killed["error"]
    assert json.loads(next(out.glob("d_killed__psnr__*.json")).read_text())["status"] == "failed"

    done_run = run_file_path(out / ".jobs", "a_nearest", "psnr", 0)
    started = read_run(done_run)["job"]["started"]
    second = {r["entry"]: r for r in run_jobs(entries, options, out, settings)}
    assert second["d_killed"]["status"] == "ok"                      # the rerun completed the killed job ...
    assert read_run(done_run)["job"]["started"] == started           # ... and submitted nothing else
    assert len(list(out.glob("d_killed__psnr__*.json"))) == 1        # its failure record was replaced

    reference = tmp_path / "in_process"
    in_process = {r["entry"]: r for r in run_track(entries, options, out_dir=reference, isolate=False)}
    assert sorted(p.name for p in out.glob("*.json")) == sorted(p.name for p in reference.glob("*.json"))
    for path in reference.glob("*.json"):
        assert _stable(out / path.name) == _stable(path)              # same file, same contents but the timing
    psnr = {n: second[n]["psnr_db"] for n in modes}
    assert psnr == {n: in_process[n]["psnr_db"] for n in modes}
    assert psnr["a_nearest"] < psnr["b_bilinear"] < psnr["c_bicubic"]  # the records are real measurements
    assert second["d_killed"]["psnr_db"] == psnr["c_bicubic"]


@pytest.fixture()
def stand_in_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in sbatch (keeps the script submitit writes as SUBMITTED/array.sh), srun, scancel, and squeue (no
    sacct: accounting off) reporting array 4242's tasks as lost beside another array of the same user; polls fast."""
    from ntirekit.jobs.slurm import SlurmBatch

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = tmp_path / "submitted"
    scripts.mkdir()
    stand_in_tool(bin_dir, "sbatch", f'cp "$1" {scripts}/array.sh\necho "Submitted batch job 4242"\n')
    stand_in_tool(bin_dir, "srun", "exit 0\n")
    stand_in_tool(bin_dir, "scancel", "exit 0\n")
    stand_in_tool(bin_dir, "squeue", 'echo "4242_0|NODE_FAIL"\necho "4242_1|TIMEOUT"\necho "4242_2|OUT_OF_MEMORY"\n'
                             'echo "424_0|RUNNING"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(SlurmBatch, "poll_s", 0.05)
    monkeypatch.setattr(SlurmBatch, "settle_s", 0.0)
    return scripts


def test_slurm_submits_one_array_and_asks_for_a_gpu_only_for_device_cuda(tmp_path: Path, hr_images: Path,
                                                                          stand_in_slurm: Path) -> None:
    """The sbatch script of the array; the tasks squeue reports lost become failure records named as their ok
    records would be."""
    scripts = stand_in_slurm
    root = tmp_path / "entries"
    for name, mode in {"a_nearest": "nearest", "b_bilinear": "bilinear", "c_bicubic": "bicubic"}.items():
        interp_entry(root, name, mode)
    out = tmp_path / "out"
    args = ["eval", "--track", "psnr", "--allow-random", "--data", str(hr_images), "--entries", str(root),
            "--entry", "a_nearest", "--entry", "b_bilinear", "--entry", "c_bicubic", "--out", str(out),
            "--executor", "slurm", "--partition", "gpu", "--mem-gb", "16", "--max-parallel", "2",
            "--cpus-per-task", "4"]
    result = CliRunner().invoke(main, [*args, "--time-limit", "30", "--quiet"])
    assert result.exit_code == 1, result.output                      # every job was lost: exit status 1
    assert result.stderr == ""                                       # --quiet: not a line on stderr
    lines = (scripts / "array.sh").read_text().splitlines()
    for flag in ("--array=0-2%2", "--nodes=1", "--ntasks-per-node=1", "--partition=gpu", "--time=30", "--mem=16GB",
                 "--cpus-per-task=4", "--job-name=ntirekit-eval", "--no-requeue", "--signal=USR2@90"):
        assert f"#SBATCH {flag}" in lines, flag
    assert not [line for line in lines if "gpus" in line or "gres" in line]   # --device auto asks for no GPU
    command = [line for line in lines if line.startswith("srun ")]
    assert len(command) == 1 and "-m submitit.core._submit" in command[0] and str(out / ".jobs") in command[0]
    assert "trap \"\" USR2" in command[0]                            # USR2 ignored until the job's handler is set

    records = {p.name.split("__")[0]: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert {n: r["job_state"] for n, r in records.items()} == {
        "a_nearest": "NODE_FAIL", "b_bilinear": "TIMEOUT", "c_bicubic": "OUT_OF_MEMORY"}
    assert records["a_nearest"]["error"] == "job 4242_0 ended NODE_FAIL: its node was lost"
    assert "ran past its time limit" in records["b_bilinear"]["error"]
    assert all(r["status"] == "failed" and r["failure_kind"] == "job" for r in records.values())
    # named as the ok record would be: data, protocol and the 4 CPUs asked for (the job never started)
    assert all(re.fullmatch(re.escape(p.name.split("__")[0]) + r"__psnr__HR-[0-9a-f]{8}\.challenge__cpu-.*-t4-.*\.json",
                            p.name) for p in out.glob("*.json")), sorted(p.name for p in out.glob("*.json"))

    result = CliRunner().invoke(main, [*args, "--time-limit", "1", "--device", "cuda"])   # the rerun: all 3 again
    assert result.exit_code == 1, result.output
    lines = (scripts / "array.sh").read_text().splitlines()
    assert "#SBATCH --gpus-per-node=1" in lines and "#SBATCH --signal=USR2@1" in lines and "#SBATCH --time=1" in lines
    assert "slurm: 3 jobs as one array on partition gpu, at most 2 at a time; each 1 task, 4 CPUs, 1 GPU" in \
        result.output


def test_jobs_take_the_cpu_quick_run_only_with_device_cpu(tmp_path: Path, stand_in_slurm: Path) -> None:
    """--device auto is resolved on each node: a GPU-less submitting machine does not make its jobs quick runs."""
    interp_entry(tmp_path / "entries", "team", "bicubic")
    common = ["eval", "--track", "runtime", "--entries", str(tmp_path / "entries"), "--entry", "team", "--quiet",
              "--leaderboard", "none", "--executor", "slurm"]
    for device, quick in (("auto", False), ("cpu", True)):
        out = tmp_path / device
        result = CliRunner().invoke(main, [*common, "--device", device, "--out", str(out)])
        assert result.exit_code == 1, result.output                  # the stand-in job is lost
        (rec,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
        assert ("crop" in rec["options"]["extra"], rec["options"]["warmup"]) == ((True, 1) if quick else (False, 3))


def test_absent_slurm_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))                        # no sbatch, srun, squeue or scancel here
    result = CliRunner().invoke(main, ["eval", "--track", "psnr", "--entry", "rlfn_ntire", "--quiet",
                                       "--out", str(tmp_path / "out"), "--executor", "slurm"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --executor slurm: no Slurm on this machine (sbatch, srun, squeue, scancel not found on PATH); run on "
        "a Slurm login node, or use --executor local"]
    assert not (tmp_path / "out").exists()


def _gpu(name: str) -> dict:
    from ntirekit.core.device import fingerprint

    return {**fingerprint("cpu"), "device": "cuda", "kind": "cuda", "gpu": name, "driver": "550.54", "cuda": "12.4",
            "cudnn": 90100}


def test_paired_baselines_rank_runs_from_different_gpus(tmp_path: Path) -> None:
    """Jobs on two GPU kinds, each timing the baseline beside its entry: absolute times do not compare (refused),
    ratios to the baseline on the same device do (the faster GPU does not win by itself)."""
    from ntirekit.measure.runtime import summarize
    from ntirekit.rank import LeaderboardError, build_leaderboard
    from ntirekit.core.records import iter_result_files, read_result, record, write_json_atomic

    root = tmp_path / "entries"
    for name in ("team_a", "team_b", "imdn_baseline"):
        interp_entry(root, name, "bicubic")
    registry = discover([root], include_defaults=False)
    a100, h100 = _gpu("NVIDIA A100-SXM4-80GB"), _gpu("NVIDIA H100 80GB HBM3")
    # per run: (entry ms, baseline ms beside it); team_a ran on the A100, team_b on the H100
    timings = {"team_a": (a100, [(20.0, 40.0), (22.0, 44.0)]), "team_b": (h100, [(15.0, 10.0), (15.0, 10.0)])}
    out, jobs_dir = tmp_path / "out", tmp_path / "out" / ".jobs"
    options = EvalOptions(track="runtime", timer="ntire", runs=2, device="cuda", progress=False)
    for name, (device, runs) in timings.items():
        for k, (entry_ms, base_ms) in enumerate(runs):
            recs = [record(n, "runtime", device, runtime_ms=summarize([ms, ms], "ntire"), timer="ntire",
                           options={"track": "runtime", "runs": 1})
                    for n, ms in ((name, entry_ms), ("imdn_baseline", base_ms))]
            write_json_atomic(run_file_path(jobs_dir, name, "runtime", k), {"job": {}, "records": recs})
    settings = ExecutorSettings("local")
    records = run_jobs([registry["team_a"], registry["team_b"]], options, out, settings,
                       baseline=registry["imdn_baseline"])                # every run is done: nothing is submitted
    by = {(r["entry"], r["device"]["gpu"]): r for r in records}
    assert by[("team_a", a100["gpu"])]["runtime_ms"]["runs"] == [20.0, 22.0]
    assert by[("team_a", a100["gpu"])]["options"]["runs"] == 2
    assert by[("imdn_baseline", a100["gpu"])]["runtime_ms"]["mean"] == 42.0
    assert by[("imdn_baseline", h100["gpu"])]["runtime_ms"]["mean"] == 10.0

    on_disk = [read_result(p) for p in iter_result_files([out])]
    assert len(on_disk) == 4                                               # two entries, the baseline on each GPU
    with pytest.raises(LeaderboardError, match="devices that do not compare"):
        build_leaderboard(on_disk, "ntire2022", "runtime")
    board = build_leaderboard(on_disk, "ntire2022", "runtime", baseline="measured")
    ranked = [(r.entry, r.values["runtime_ms"].mean) for r in board.rows if r.status == "ranked"]
    assert ranked == [("team_a", pytest.approx(21.0 / 42.0)), ("team_b", pytest.approx(15.0 / 10.0))]


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import ntirekit.jobs.collect as collect
    from ntirekit.jobs import ExecutorError
    from ntirekit.core.records import record, write_json_atomic

    interp_entry(tmp_path / "entries", "team_a", "bicubic")
    entry = discover([tmp_path / "entries"], include_defaults=False)["team_a"]
    out = tmp_path / "out"
    rec = record("team_a", "psnr", _gpu("NVIDIA H100 80GB HBM3"), psnr_db=30.0)
    write_json_atomic(run_file_path(out / ".jobs", "team_a", "psnr", 0), {"job": {}, "records": [rec]})

    def full(path: Path, obj: object) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    import ntirekit.core.records as records

    monkeypatch.setattr(collect, "write_json_atomic", full)
    monkeypatch.setattr(records, "write_json_atomic", full)         # write_record's writes too
    options = EvalOptions(track="psnr", progress=False)
    with pytest.raises(ExecutorError, match="No space left on device; the records written so far are intact"):
        run_jobs([entry], options, out, ExecutorSettings("local"))
    assert not list(out.glob("*.json"))                             # nothing half-written
    monkeypatch.undo()
    assert run_jobs([entry], options, out, ExecutorSettings("local"))[0]["psnr_db"] == 30.0   # the rerun merges it


def test_local_jobs_get_one_gpu_each_and_never_share_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slot logic on a machine with two GPUs (stand-in executor: what it is told, and when)."""
    from ntirekit.jobs.executors import LocalBatch, local_slots

    class Job:
        def __init__(self, gpus: tuple) -> None:
            self.gpus, self.finished = gpus, False

        def done(self) -> bool:
            return self.finished

    class Executor:
        def __init__(self) -> None:
            self.params: dict = {}
            self.jobs: list[Job] = []

        def update_parameters(self, **kwargs: object) -> None:
            self.params.update(kwargs)

        def submit(self, fn: object, spec: object) -> Job:
            assert self.params["gpus_per_node"] == 1
            self.jobs.append(Job(self.params["visible_gpus"]))
            return self.jobs[-1]

    monkeypatch.setattr("ntirekit.jobs.executors.visible_gpus", lambda: [2, 5])   # CUDA_VISIBLE_DEVICES=2,5
    assert local_slots(ExecutorSettings("local"), "cuda") == [2, 5]
    assert local_slots(ExecutorSettings("local", max_parallel=1), "cuda") == [2]
    assert local_slots(ExecutorSettings("local", max_parallel=3), "cpu") == [None, None, None]
    executor = Executor()
    batch = LocalBatch(executor, None, ["j0", "j1", "j2"], [2, 5], time_limit_min=60)
    assert batch.tick() == [] and [j.gpus for j in executor.jobs] == [(2,), (5,)] and batch.counts() == (2, 1)
    executor.jobs[1].finished = True
    assert batch.tick() == [("j1", executor.jobs[1], None, None)]
    assert [j.gpus for j in executor.jobs] == [(2,), (5,), (5,)]          # the freed GPU, never a busy one
