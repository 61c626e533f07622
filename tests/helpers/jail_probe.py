"""A probe entry for the jail's tests: its model's constructor runs test code inside the jail and prints what it saw.

:func:`probe_entry` writes an entry whose ``Net.__init__`` runs ``code`` (which fills the dict ``out``) and prints
``JAILOUT <json>``; :func:`run_probe` runs it through the jail exactly as an evaluation does (the producer's
``serve``), and returns the jail's report and ``out`` read back from the captured output.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ntirekit.core.spec import Entry, read_spec
from ntirekit.eval.producer import Harness
from ntirekit.eval.sides import entry_files
from ntirekit.jail.channel import ChannelError, RemoteError
from ntirekit.jail.run import Jail, JailReport, Limits

MODEL = '''import json, os, sys
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        out = {{}}
{code}
        print("JAILOUT " + json.dumps(out), flush=True)
        self.conv = nn.Conv2d(3, 48, 3, padding=1)
        self.up = nn.PixelShuffle(4)

    def forward(self, x):
        return self.up(self.conv(x))
'''


def probe_entry(folder: Path, code: str, name: str = "probe01") -> Path:
    """An entry folder whose model runs ``code`` when built (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "entry.toml").write_text(f'name = "{name}"\ntrack = "esr"\ntask = "sr"\nscale = 4\ndata_range = 1.0\n'
                                       '[model]\nfactory = "model.py:Net"\n')
    (folder / "model.py").write_text(MODEL.format(code=textwrap.indent(textwrap.dedent(code), " " * 8)))
    return folder


def run_probe(folder: Path, limits: Limits | None = None) -> tuple[JailReport, dict[str, Any]]:
    """Build the probe entry in the jail (the producer's function), end; the report and what the probe printed."""
    entry = Entry(read_spec(folder), folder)
    jail = Jail("ntirekit.eval.producer:serve", {"spec": entry.spec.to_dict(), "harness": asdict(Harness(4, 1.0))},
                limits=limits or Limits(time_s=120), files=entry_files(entry, None, None))
    try:
        with jail as channel:
            channel.receive()
            channel.send({"kind": "end"})
            channel.receive()
    except (ChannelError, RemoteError):
        pass
    report = jail.close()
    lines = [line for line in report.output.splitlines() if line.startswith("JAILOUT ")]
    return report, json.loads(lines[-1][len("JAILOUT "):]) if lines else {}
