"""``ntirekit codabench scoring-program OUT/``: a self-contained Codabench scoring program.

The folder holds what Codabench's scoring-program contract asks (docs.codabench.org, *Competition Bundle Structure*,
"Scoring Program"; the compute worker replaces ``$program``, ``$input`` and ``$output`` in the command by
``/app/program``, ``/app/input`` and ``/app/output`` and runs it with the upload in ``/app/input/res`` and the
reference data in ``/app/input/ref``):

- ``metadata.yaml``: ``command: python3 $program/score.py $input $output``;
- ``score.py``: :mod:`ntirekit.score.codabench.program` with the kit code it imports written into it, the way the kit
  makes entries self-contained (:func:`ntirekit.train.bundle.self_contained_source`): the scoring of
  :mod:`ntirekit.score.scoring`, the bounded PNG reader, the upload layout rules, ``readme.txt`` parsing and
  :func:`ntirekit.quality.psnr` itself, so its figures are the kit's. It imports numpy and Pillow (the one PNG decoder)
  and the standard library, nothing else;
- ``settings.json``: the :class:`~ntirekit.score.scoring.ScoringSettings` (track, PSNR protocol, border, frame step).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ntirekit.score.codabench import program
from ntirekit.score.codabench.yamlw import dump_yaml
from ntirekit.score.scoring import ScoringSettings
from ntirekit.train.bundle import kit_imports, self_contained_source

__all__ = ["COMMAND", "PROGRAM_FILES", "program_source", "write_scoring_program"]

#: the scoring command, in Codabench's placeholders
COMMAND = "python3 $program/score.py $input $output"
PROGRAM_FILES = ("metadata.yaml", "score.py", program.SETTINGS_FILE)


def program_source() -> str:
    """``score.py``: the program module with every kit definition it uses written into it."""
    path = Path(program.__file__)
    source = self_contained_source(path.read_text(encoding="utf-8"), "score.py")
    left = kit_imports(source, "score.py")
    if left:
        raise AssertionError(f"score.py still imports {', '.join(left)}")
    return source


def write_scoring_program(out: str | os.PathLike, settings: ScoringSettings) -> list[Path]:
    """Write the scoring program into the folder ``out`` (created; its three files replaced); returns them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / name for name in PROGRAM_FILES]
    files[0].write_text(dump_yaml({"command": COMMAND, "description": f"ntirekit scoring program: "
                                   f"{settings.results_format}, {settings.describe()}"}), encoding="utf-8")
    files[1].write_text(program_source(), encoding="utf-8")
    files[2].write_text(json.dumps(settings.to_dict(), indent=1) + "\n", encoding="utf-8")
    return files
