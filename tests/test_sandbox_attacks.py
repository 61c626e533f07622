"""Hostile entries in the jail (issues 12, 21): each is a working tiny entry with one attack added to its model
module; the organizer's run finishes, the honest entry's figures equal an in-process run's, the attack reaches nothing
outside the jail, and the psnr figures are the parent's own."""

from __future__ import annotations

import ast
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ntirekit.core.records import read_result, record_path
from ntirekit.core.registry import discover
from ntirekit.data.images import write_image
from ntirekit.eval.runner import run_track
from ntirekit.jail.bwrap import bwrap_problem, runtime_binds
from ntirekit.jail.capture import MAX_BYTES
from ntirekit.eval.track import EvalOptions
from tests.helpers.entries import TINY_MODEL, write_entry

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bwrap_problem() is not None, reason=f"no bwrap sandbox here: {bwrap_problem()}")]

#: Each attack runs when the entry's model module is imported inside the child; ``{leak}``, ``{data}`` and ``{out}``
#: are host paths outside the sandbox's scratch folder.
ATTACKS = {
    "a_leak": '''
import os, pathlib
print("PASSWD:%s" % os.path.exists("/etc/passwd"), flush=True)
print("HOME:" + repr(sorted(os.listdir("{home}")) if os.path.isdir("{home}") else []), flush=True)
try:
    pathlib.Path("{leak}").write_text(open("/etc/passwd").read())
except OSError:
    pass
''',
    "b_hr": '''
import os
found = 0
for top in ("{data}", "/"):
    try:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr")]
            found += sum(f.startswith("hr_secret") for f in files)
    except OSError:
        pass
print("HR:%d" % found, flush=True)
''',
    "c_killer": '''
import os, signal
print("PPID:%d" % os.getppid(), flush=True)
os.kill(os.getppid(), signal.SIGKILL)
raise SystemExit("could not stop the organizer")
''',
    "d_forger": '''
import atexit, json, os, subprocess, sys
FAKE = {{"entry": "good", "track": "psnr", "status": "ok", "psnr_db": 99.0, "images": []}}
def forge():
    for path in ("{out}/good__psnr__forged.json", "/scratch/result.json"):
        try:
            with open(path, "w") as f:
                json.dump([FAKE] if path.endswith("result.json") else FAKE, f)
        except OSError:
            pass
atexit.register(forge)
subprocess.Popen([sys.executable, "-c", "import time, pathlib; time.sleep(1.5); "
                  "pathlib.Path('{out}/late.json').write_text('{{}}')"], start_new_session=True)
''',
    "e_shouter": '''
import sys
sys.stdout.write("x" * 50_000_000 + "\\n")
sys.stdout.flush()
''',
    "f_psnr": '''
import sys
for module in list(sys.modules.values()):        # every PSNR function the child's kit modules hold
    for name in dir(module) if module and module.__name__.startswith("ntirekit") else ():
        if "psnr" in name.lower() and callable(getattr(module, name, None)):
            setattr(module, name, lambda *a, **k: 50.0)
''',
    "g_frames": '''
import gc, inspect
import numpy as np
import torch
def _hr_in_reach():
    seen = [o for o in gc.get_objects() if isinstance(o, (np.ndarray, torch.Tensor)) and tuple(o.shape[-3:-1]) == (32, 32)]
    for frame in inspect.stack():
        seen += [v for v in frame.frame.f_locals.values() if isinstance(v, np.ndarray) and v.shape[:2] == (32, 32)]
    return seen
_forward = TinySR.forward
def forward(self, x):
    found = _hr_in_reach()
    print("HRFOUND:%d" % len(found), flush=True)
    return _forward(self, x)
TinySR.forward = forward
''',
    "h_name": '''
import sys
import ntirekit.core.records as records
_real = records.record
def forged(entry, *args, **kwargs):
    return _real("../../../escaped", *args, **kwargs)
for module in list(sys.modules.values()):
    if getattr(module, "record", None) is _real:
        module.record = forged
''',
}


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Any]:
    """Two 32x32 HR images (``hr_secret_*``; LR made by the kit's bicubic), an honest entry ``good`` with seeded
    weights, and one hostile copy of it per attack."""
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(data / f"hr_secret_{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    from torch import nn
    state = {"conv.weight": nn.init.normal_(torch.empty(48, 3, 3, 3), std=0.1), "conv.bias": torch.zeros(48)}
    roots = tmp_path / "entries"
    out = tmp_path / "results"
    out.mkdir()
    paths = {"leak": tmp_path / "leak.txt", "data": data, "out": out, "home": Path.home()}
    for name, attack in {"good": "", **ATTACKS}.items():
        folder = write_entry(roots, name, model_code=TINY_MODEL + attack.format(**paths),
                             extra_toml='\n[weights]\nfile = "w.pth"\n')
        torch.save(state, folder / "w.pth")
    return {"registry": discover([roots], include_defaults=False), "out": out, **paths}


def test_hostile_entries_reach_nothing_and_honest_figures_stand(world: dict[str, Any]) -> None:
    registry, out = world["registry"], world["out"]
    options = EvalOptions(track="psnr", data=str(world["data"]), device="cpu", progress=False)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records = run_track(list(registry.values()), options, out_dir=out, isolate=True, timeout_s=120)
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    reference = run_track([registry["good"]], options, isolate=False)[0]
    by = {r["entry"]: r for r in records}
    assert sorted(by) == sorted(["good", *ATTACKS])
    for rec in by.values():
        assert rec["sandbox"] == "bwrap"
        assert len(rec.get("output", "").encode()) <= MAX_BYTES + 4096

    good = by["good"]
    assert good["status"] == "ok" and reference["status"] == "ok"
    assert good["psnr_db"] == reference["psnr_db"] and good["images"] == reference["images"]

    # (a) no /etc/passwd; of the host's $HOME at most the folder the Python runtime is installed in; nothing written
    home = Path.home().resolve()
    runtime = {p.relative_to(home).parts[0] for p in runtime_binds() if home in p.parents}
    leak = by["a_leak"]["output"]
    assert "PASSWD:False" in leak and not world["leak"].exists()
    assert set(ast.literal_eval(leak.split("HOME:")[1].splitlines()[0])) <= runtime
    # (b) the HR images are nowhere in the sandbox (the child only ever gets LR copies)
    assert "HR:0" in by["b_hr"]["output"]
    # (c) the organizer was not its parent; the entry is recorded failed with its reason
    assert "PPID:1" in by["c_killer"]["output"]
    assert by["c_killer"]["status"] == "failed" and "could not stop the organizer" in by["c_killer"]["error"]
    # (d) its forged records went nowhere: the parent's own figures and names stand
    assert by["d_forger"]["status"] == "ok" and by["d_forger"]["psnr_db"] == reference["psnr_db"]
    # (e) a 50 MB line is cut, and the organizer did not hold it
    assert by["e_shouter"]["status"] == "ok" and "bytes cut]" in by["e_shouter"]["output"]
    assert rss_growth_mib < 40

    # (f) PSNR functions patched inside: the figure is the parent's own
    assert by["f_psnr"]["status"] == "ok" and by["f_psnr"]["psnr_db"] == reference["psnr_db"]
    # (g) no HR image in the child's memory or stack frames, so the output is the model's own
    assert "HRFOUND:0" in by["g_frames"]["output"] and by["g_frames"]["psnr_db"] == reference["psnr_db"]
    # (h) a forged entry name in the child's record: the parent's name and file name stand
    assert by["h_name"]["entry"] == "h_name" and by["h_name"]["psnr_db"] == reference["psnr_db"]
    assert not list(out.parents[2].glob("escaped*")) and not list(out.parent.rglob("escaped*"))  # ../../../ of out

    time.sleep(2.5)                                 # the forger's daemon would have written by now
    expected = {record_path(out, rec).name for rec in by.values()}
    assert {p.name for p in out.iterdir()} == expected
    assert read_result(record_path(out, by["good"]))["psnr_db"] == reference["psnr_db"]


def test_timing_tracks_send_lr_images_only(world: dict[str, Any]) -> None:
    """The timing tracks send the jail the LR images of ``--data`` only (as arrays over the channel): the HR files are
    nowhere in it, and the graph is timed on the dataset's own LR images (same count and sizes as in process)."""
    registry = world["registry"]
    options = EvalOptions(track="runtime", data=str(world["data"]), device="cpu", progress=False, warmup=0,
                          repeats=1)
    hostile = run_track([registry["b_hr"]], options, isolate=True, timeout_s=120)[0]
    assert hostile["status"] == "ok", hostile.get("error")
    assert hostile["sandbox"] == "bwrap" and "HR:0" in hostile["output"] and hostile["measured"] == "graph"
    reference = run_track([registry["good"]], options, isolate=False)[0]
    assert hostile["runtime_images"] == reference["runtime_images"] == 2
    assert hostile["runtime_input"] == reference["runtime_input"] == str(world["data"])


def test_entry_paths_stay_inside_the_entry_and_weights_come_from_the_organizer(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``[weights].file`` absolute or with ``..`` is refused for folders as for zips; a checkpoint that is a link
    leading out of the folder is refused; an honest entry whose checkpoint the organizer keeps in
    ``$NTIREKIT_WEIGHTS`` gets it in the jail (found and verified by the organizer's process)."""
    secret = tmp_path / "secret.pth"
    torch.save({"conv.weight": torch.zeros(48, 3, 3, 3), "conv.bias": torch.zeros(48)}, secret)
    roots = tmp_path / "entries"
    for name, file in (("abs_path", str(secret)), ("dotdot", "../../secret.pth")):
        write_entry(roots, name, extra_toml=f'\n[weights]\nfile = "{file}"\n')
    linked = write_entry(roots, "linked", extra_toml='\n[weights]\nfile = "w.pth"\n')
    (linked / "w.pth").symlink_to(secret)
    store = tmp_path / "organizer_weights"
    store.mkdir()
    torch.manual_seed(0)
    state = {"conv.weight": torch.randn(48, 3, 3, 3) * 0.1, "conv.bias": torch.zeros(48)}
    torch.save(state, store / "honest.pth")
    write_entry(roots, "honest", extra_toml='\n[weights]\nfile = "honest.pth"\n')
    monkeypatch.setenv("NTIREKIT_WEIGHTS", str(store))
    skipped: list[str] = []
    registry = discover([roots], include_defaults=False, report=skipped.append)
    assert sorted(registry) == ["honest", "linked"]
    assert any("abs_path" in line and "inside the entry's folder" in line for line in skipped)
    assert any("dotdot" in line and "inside the entry's folder" in line for line in skipped)
    data = tmp_path / "data"
    write_image(data / "a.png", np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    options = EvalOptions(track="psnr", data=str(data), device="cpu", progress=False)
    by = {r["entry"]: r for r in run_track([registry["honest"], registry["linked"]], options, isolate=True,
                                           timeout_s=120)}
    reference = run_track([registry["honest"]], options, isolate=False)[0]
    assert by["honest"]["status"] == "ok" and by["honest"]["psnr_db"] == reference["psnr_db"]
    assert by["honest"]["weights"] == "pretrained"
    assert by["linked"]["status"] == "failed" and "lead outside" in by["linked"]["error"]


def test_what_a_team_raises_reaches_the_record_clean(tmp_path: Path) -> None:
    attack = TINY_MODEL + '''
_forward = TinySR.forward
def forward(self, x):
    raise RuntimeError("\\x1b]0;owned\\x07\\x1b[2J<a href='javascript:alert(1)'>click</a>\\r\\x1b[1Afake ok")
TinySR.forward = forward
'''
    write_entry(tmp_path / "e", "loud", model_code=attack)
    registry = discover([tmp_path / "e"], include_defaults=False)
    data = tmp_path / "data"
    write_image(data / "a.png", np.zeros((16, 16, 3), dtype=np.uint8))
    rec = run_track([registry["loud"]], EvalOptions(track="psnr", data=str(data), device="cpu", progress=False),
                    isolate=True, timeout_s=120)[0]
    assert rec["status"] == "failed" and "javascript" in rec["error"]
    assert not any(c in rec["error"] for c in "\x1b\x07\r\n")
