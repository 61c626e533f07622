"""What the job tests share: small HR-only image folders and stand-in Slurm commands."""
from __future__ import annotations

import stat
from pathlib import Path

import cv2
import numpy as np


def smooth_hr_folder(folder: Path, count: int = 2, size: int = 64) -> Path:
    """``count`` smooth ``size``x``size`` HR images in ``folder`` (an HR-only folder: the kit makes the LR with MATLAB
    bicubic), the same for every call (seed 0)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (7, 7), 2)
        cv2.imwrite(str(folder / f"im{i}.png"), img)
    return folder


def stand_in_tool(folder: Path, name: str, body: str) -> None:
    """An executable ``folder/name`` running the shell ``body`` (a stand-in ``sbatch``, ``squeue``, ...)."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
