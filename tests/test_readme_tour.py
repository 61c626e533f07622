"""The README's tour, every command in order as pasted, in a fresh folder (issue 15).

The folder holds what a checkout beside ``../shared`` holds for the tour: the set-up's ``.venv`` (linked), the
``submissions/`` examples (copied, without their trained weights, which the repository does not hold either),
``../shared`` (linked) and the reference figures of ``metrics/`` (one entry's, so
that ``regress`` stays short). Where the tour's data would be slow here, :data:`SMALLER` appends arguments (fewer
entries, inputs, frames or steps; click takes the last value of an option given twice); the command text itself is
the README's. Each command must exit 0 and leave what the README says it makes (:data:`MAKES`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("x265") is None, reason="x265/ffmpeg not installed")]

METRICS = "metrics/cpu-intel-xeon-t2-fp32-torch2.13.0"

#: command prefix -> arguments appended in this test (smaller data, fewer steps)
SMALLER = {
    "ntirekit eval --track overall": "--entry span --entry rlfn_ntire --images 1 --crop 48",
    "ntirekit eval --track psnr --data ../shared/data/images/Set5 --split test": "--entry rlfn_ntire --entry span",
    "ntirekit finetune": "--steps 2",
    "ntirekit data synth-clips": "--clips 1 --frames 6",
    "ntirekit data compress clean/*": "--preset ultrafast",
    "ntirekit data compress ../shared": "--frames 12 --preset ultrafast",
    "ntirekit train": "--steps 2",
}

#: command prefix -> globs that must match something after it ran
MAKES = {
    "ntirekit eval --track psnr --data ../shared/data/images/Set5 --protocol paper": [
        "results/imdn__psnr__*.json", "results/bicubic__psnr__*.json"],
    "ntirekit eval --track overall": ["results/span__overall__*.json"],
    "ntirekit eval --track psnr --data ../shared/data/images/Set5 --split test": ["sr/rlfn_ntire/baby.png"],
    "ntirekit pack sr/rlfn_ntire": ["rlfn_ntire*.zip"],
    "ntirekit leaderboard results/ --protocol ntire2024": ["ntire2024.json"],   # score protocols on CPU records
    "ntirekit leaderboard results/ --protocol ntire2025": [],
    "ntirekit leaderboard results/ --protocol ntire2026": [],
    "ntirekit leaderboard results/": ["pareto.png"],
    "ntirekit reparam": ["deploy/rlfn_rep/entry.toml"],
    "ntirekit prune": ["pruned/rlfn_46_48/entry.toml"],
    "ntirekit finetune": ["tuned/rlfn_46_48/entry.toml"],
    "ntirekit data synth-clips": ["clean/*/*.png"],
    "ntirekit data compress clean/*": ["train_clips/*/qp.txt"],
    "ntirekit data compress ../shared": ["clips/basicvsrpp_demo_000/qp.txt"],
    "ntirekit train": ["trained/entry.toml"],
    "ntirekit eval --track vqe --data clips/ --entries trained/ --trust trained/ --entry pqf_basicvsrpp_trained "
    "--save": ["up/pqf_basicvsrpp_trained/readme.txt", "up/pqf_basicvsrpp_trained/basicvsrpp_demo_000/010.png"],
    "ntirekit eval --track vqe": ["results/pqf_basicvsrpp_trained__vqe__*.json"],
    "ntirekit pack up/": ["pqf_basicvsrpp_trained*.zip"],
    "ntirekit pack tuned/rlfn_46_48": ["team42_rlfn_pruned.zip"],
}


def tour_commands(readme: str) -> list[str]:
    """The commands of the first ``bash`` block after the tour's heading, comments and blank lines left out."""
    block = readme.split("## A short tour", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in re.sub(r"\\\n\s*", "", block).splitlines():           # continuation lines joined
        command = re.split(r"\s+# ", line, maxsplit=1)[0].strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def _folder(tmp_path: Path, shared: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / "shared").symlink_to(shared)
    shutil.copytree(REPO / "submissions", work / "submissions",
                    ignore=shutil.ignore_patterns("__pycache__", "*.zip", "*.pth"))
    reference = work / METRICS
    reference.mkdir(parents=True)
    for record in (REPO / METRICS).glob("span__*.json"):
        shutil.copy(record, reference / record.name)
    return work


def test_every_tour_command_runs_as_pasted(tmp_path: Path, shared_data: Path) -> None:
    commands = tour_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert commands[0] == "source .venv/bin/activate" and len(commands) > 20
    assert {f"ntirekit leaderboard results/ --protocol ntire{year}" for year in (2022, 2024, 2025, 2026)} <= \
        {" ".join(c.split()[:5]) for c in commands}, "every protocol's leaderboard on the tour's CPU records"
    assert not [c for c in commands if re.search(r"<\w+>|\bX\b|HR_IMAGES", c)], "placeholders in the tour"
    work = _folder(tmp_path, shared_data.parent)
    lines = []
    for i, command in enumerate(commands):
        extra = next((v for k, v in SMALLER.items() if command.startswith(k)), "")
        lines.append(f"{command} {extra}".strip() + f' > "log{i}.txt" 2>&1; echo "{i} $?" >> rc.txt')
    (work / "tour.sh").write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTIREKIT_", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"                     # ntirekit only through the tour's activate
    subprocess.run(["bash", "tour.sh"], cwd=work, env=env, timeout=1800, check=False)

    codes = dict(line.split() for line in (work / "rc.txt").read_text().splitlines())
    for i, command in enumerate(commands):
        log = (work / f"log{i}.txt").read_text(errors="replace")[-3000:]
        assert codes.get(str(i)) == "0", f"{command!r} exited {codes.get(str(i))}:\n{log}"
        for pattern in next((v for k, v in MAKES.items() if command.startswith(k)), []):
            assert list(work.glob(pattern)), f"{command!r} did not make {pattern}:\n{log}"
