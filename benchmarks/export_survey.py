#!/usr/bin/env python
"""Survey of exported graphs: every ESR baseline of the kit and every team of an NTIRE ESR repository, exported with
``torch.export`` in the kit's graph format, read back by the strict reader, and compared with the eager model.

Per entry (each in its own process, with a time limit, so that a crash or a hang of one team stops nothing):

- **export** (:func:`ntirekit.graph.export.export_graph`) for input heights and widths from 64 to 512: ``dynamic``
  (one program), ``static`` (one program per shape; why the dynamic export failed, in one line) or ``none`` (the
  ``NotExportable`` line); the file is read back with :func:`ntirekit.graph.read.read_graph`;
- **outputs**: the graph's float output against the eager model's on ``rand`` inputs of 256x256, 96x160 and 64x64
  (bit-identical or not; where not, the largest difference and whether eager repeats itself);
- **counts** at 1x3x256x256: :func:`ntirekit.measure.graph_counts.count_graph` against
  :func:`ntirekit.measure.counts.count`, field by field (params, macs_ntire2022, macs_fvcore, activations,
  activations_fvcore, convs), and the graph's ``*_missed`` figures;
- **identity**: the ``graph_id`` (:mod:`ntirekit.graph.identity`) at 256x256 of the dynamic program and of a static
  export at 256x256; for a static-only entry, whether its programs at 256x256 and 96x160 have the same structure
  (the same operator sequence and data flow, numbers ignored);
- **runtime**: graph / eager on the CPU, both modules timed interleaved in one run by the robust timer
  (:func:`ntirekit.eval.pipeline.time_entries`) on one ``--time-size`` square input.

Import a repository's teams first (checkpoints copied into the entries), then survey::

    .venv/bin/ntirekit import-ntire /tmp/NTIRE2022_ESR --out /tmp/imp22 --copy-weights
    .venv/bin/python benchmarks/export_survey.py /tmp/imp22 --json /tmp/survey22.json          # baselines + teams
    .venv/bin/python benchmarks/export_survey.py --no-baselines /tmp/imp24 --json /tmp/survey24.json
    .venv/bin/python benchmarks/export_survey.py --no-baselines /tmp/imp22 --only team20_mobilesr --static-only \
        --json /tmp/survey22_static.json      # an entry whose dynamic export runs out of time (sympy)
    .venv/bin/python benchmarks/export_survey.py --summary /tmp/survey22.json /tmp/survey22_static.json \
        /tmp/survey24.json                    # merged table (a later file's record of an entry wins)

Some teams import ``einops`` (``pip install einops`` in the venv); ``--copy-weights`` is needed since entry folders
may no longer point at checkpoints outside themselves.

Baselines are measured with random weights when theirs are not at hand (no count or export depends on them); teams
with their checkpoints. A team's code runs only in its child process; its folder is declared trusted there (it is the
organizers' published code, ``ntirekit.core.trust.add_roots``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
BASELINES = REPO / "ntirekit" / "baselines"
#: the count fields compared between graph and eager
FIELDS = ("params", "macs_ntire2022", "macs_fvcore", "activations", "activations_fvcore", "convs")
MISSED = ("macs_ntire2022_missed", "activations_missed", "convs_missed")
COUNT_HW = (256, 256)
#: output checks: square, non-square, smallest
CHECK_HW = ((256, 256), (96, 160), (64, 64))
RANGE_HW = ((64, 64), (512, 512))


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------- one entry

def _why_dynamic_fails(model: Any, shapes: Sequence[tuple[int, ...]], multiple: int) -> str:
    """The one line ``torch.export`` gives for the dynamic export :func:`ntirekit.graph.export.export_graph` tried
    (the same ``Dim`` spec), shortened to its guard where it names one."""
    import torch

    heights, widths = [s[-2] for s in shapes], [s[-1] for s in shapes]
    example = max(shapes, key=lambda s: (s[-2] != s[-1], s[-2] * s[-1]))
    spec = {}
    for axis, (lo, hi) in enumerate(((min(heights), max(heights)), (min(widths), max(widths)))):
        name = "hw"[axis]
        if multiple > 1:
            spec[2 + axis] = multiple * torch.export.Dim(f"{name}_{multiple}", min=max(1, math.ceil(lo / multiple)),
                                                         max=hi // multiple)
        else:
            spec[2 + axis] = torch.export.Dim(name, min=max(2, lo), max=hi)
    try:
        torch.export.export(model, (torch.rand(example),), dynamic_shapes=(spec,))
    except Exception as exc:  # noqa: BLE001 - the reason is the figure
        lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
        for key in ("Not all values of", "guard", "Could not guard", "data-dependent", "Constraints violated"):
            hit = next((line for line in lines if key in line), None)
            if hit:
                return one_line(f"{type(exc).__name__}: {hit}")
        return one_line(f"{type(exc).__name__}: {lines[0] if lines else ''}")
    return "the dynamic export succeeds when tried alone"


def _structure(program: Any) -> list[Any]:
    """A program's operator sequence with its data flow, numbers and size arithmetic left out."""
    import torch
    from torch import fx

    from ntirekit.graph.ops import SIZE_OPS

    index: dict[fx.Node, Any] = {}
    steps: list[Any] = []

    def canon(value: Any) -> Any:
        if isinstance(value, fx.Node):
            return index.get(value, "#")
        if isinstance(value, (list, tuple)):
            return [canon(v) for v in value]
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return "#"
        return str(value) if not isinstance(value, torch.Tensor) else "tensor"

    for node in program.module.graph.nodes:
        if node.op == "placeholder":
            index[node] = "x"
        elif node.op == "get_attr":
            index[node] = f"w{node.meta.get('ntk_tensor')}"
        elif node.op == "call_function":
            target = node.meta.get("ntk_target", "")
            if target in SIZE_OPS:
                continue
            index[node] = len(steps)
            steps.append([target, canon(list(node.args)), {k: canon(v) for k, v in node.kwargs.items()}])
    return steps


def _first_difference(a: list[Any], b: list[Any]) -> str:
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"step {k}: {one_line(x, 120)} vs {one_line(y, 120)}"
    return f"{len(a)} vs {len(b)} steps"


class StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """An empty package in place of ``name`` (and any module below it) where ``name`` cannot be imported, so that
    team code importing it without using it loads; :attr:`used` says whether anything imported it. A team that uses
    it fails on the first attribute it reads (its one line says which)."""

    def __init__(self, name: str):
        self.name = name
        self.used = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name and not fullname.startswith(self.name + "."):
            return None
        self.used = True
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> Any:
        return None

    def exec_module(self, module: Any) -> None:
        pass


def add_stand_ins(names: Sequence[str]) -> list[StandIn]:
    """A :class:`StandIn` at the end of ``sys.meta_path`` for each of ``names`` that cannot be imported."""
    added = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            added.append(StandIn(name))
            sys.meta_path.append(added[-1])
    return added


def static_graph(model: Any, shapes: Sequence[tuple[int, ...]], multiple: int) -> Any:
    """The graph file of one static program per shape (no dynamic export tried), as an ``ExportedGraph``."""
    from ntirekit.graph.export import ExportedGraph, export_programs, write_graph
    from ntirekit.graph.kinds import module_kinds

    started = time.perf_counter()
    programs = [p for s in shapes for p in export_programs(model, [s], multiple)[0]]
    return ExportedGraph(write_graph(programs, module_kinds(model)), len(programs), False,
                         time.perf_counter() - started)


def survey_one(folder: Path, *, time_hw: int, warmup: int, repeats: int, threads: int,
               stand_ins: Sequence[str] = (), static_only: bool = False) -> dict[str, Any]:
    """Every figure of the module docstring for the entry in ``folder`` (its code runs in this process)."""
    sys.path.insert(0, str(REPO))
    import torch

    from ntirekit.core.registry import discover
    from ntirekit.core.spec import input_contract
    from ntirekit.core.trust import add_roots
    from ntirekit.eval.graph_side import GraphModel
    from ntirekit.eval.pipeline import load_for_measurement, measured_form, time_entries
    from ntirekit.graph.errors import NotExportable
    from ntirekit.graph.export import export_graph
    from ntirekit.graph.identity import graph_id
    from ntirekit.graph.read import read_graph
    from ntirekit.measure.counts import count, make_input
    from ntirekit.measure.graph_counts import count_graph

    torch.set_num_threads(threads)
    add_roots(trusted=[folder])
    (entry,) = discover([folder], include_defaults=False).values()
    out: dict[str, Any] = {"entry": entry.name, "folder": str(folder)}
    finders = add_stand_ins(stand_ins)
    started = time.perf_counter()
    model, out["weights"] = load_for_measurement(entry, device="cpu")
    out["stand_ins"] = [f.name for f in finders if f.used]
    out["form"] = measured_form(model)
    contract = input_contract(entry)
    data_range = float(entry.spec.data_range)

    def shape(hw: tuple[int, int]) -> tuple[int, int, int, int]:
        return (1, 3, *contract.padded(*hw))

    def rand(s: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(s, generator=torch.Generator().manual_seed(1)) * data_range

    count_shape = shape(COUNT_HW)
    check_shapes = list(dict.fromkeys(shape(hw) for hw in CHECK_HW))
    time_shape = shape((time_hw, time_hw))
    shapes = list(dict.fromkeys([*(shape(hw) for hw in RANGE_HW), *check_shapes, count_shape, time_shape]))
    out["shapes"] = [list(s) for s in shapes]

    t = time.perf_counter()
    eager = count(model, count_shape, cross_check=False)
    out["eager_count_s"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    try:
        exported = static_graph(model, shapes, contract.multiple) if static_only else \
            export_graph(model, shapes, contract.multiple)
    except NotExportable as exc:
        out.update(export="none", why=str(exc), export_s=round(time.perf_counter() - t, 2),
                   eager={k: getattr(eager, k) for k in FIELDS}, seconds=round(time.perf_counter() - started, 1))
        return out
    out.update(export="dynamic" if exported.dynamic else "static", programs=exported.programs,
               export_s=round(exported.seconds, 2), bytes=len(exported.data))
    if static_only:
        out["why"] = "static programs only (--static-only: the dynamic export was not tried)"
    elif not exported.dynamic:
        out["why"] = _why_dynamic_fails(model, shapes, contract.multiple)
    graph = read_graph(exported.data)
    graph_model = GraphModel(graph)

    checks = []
    with torch.no_grad():
        for s in check_shapes:
            x = rand(s)
            y_eager, y_graph = model(x), graph_model(x)
            same = bool(y_eager.shape == y_graph.shape and torch.equal(y_eager, y_graph))
            check: dict[str, Any] = {"shape": list(s), "identical": same}
            if not same:
                check["max_abs_diff"] = float((y_eager - y_graph).abs().max()) if y_eager.shape == y_graph.shape \
                    else None
                check["eager_repeats_itself"] = bool(torch.equal(y_eager, model(x)))
            checks.append(check)
    out["outputs"] = checks
    out["outputs_identical"] = all(c["identical"] for c in checks)

    t = time.perf_counter()
    ours = count_graph(graph, count_shape)
    out["graph_count_s"] = round(time.perf_counter() - t, 2)
    out["eager"] = {k: getattr(eager, k) for k in FIELDS}
    out["graph"] = {k: getattr(ours, k) for k in (*FIELDS, *MISSED)}
    out["eager"]["functional_convs"] = eager.functional_convs
    out["equal"] = {k: getattr(eager, k) == getattr(ours, k) for k in FIELDS}
    out["graph_warnings"] = ours.warnings
    out["eager_warnings"] = eager.warnings

    program = graph.program_for(count_shape)
    identity = graph_id(program, make_input(program.module, count_shape))
    out["graph_id"] = identity
    if exported.dynamic:
        static = read_graph(export_graph(model, [count_shape], contract.multiple).data)
        static_program = static.program_for(count_shape)
        out["graph_id_static"] = graph_id(static_program, make_input(static_program.module, count_shape))
        out["graph_id_agree"] = out["graph_id_static"] == identity
    else:
        other = next(s for s in check_shapes if s != count_shape)
        a, b = _structure(program), _structure(graph.program_for(other))
        out["structure_sizes"] = [list(count_shape), list(other)]
        out["same_structure"] = a == b
        out["same_ops"] = [s[0] for s in a] == [s[0] for s in b]
        if a != b:
            out["structure_difference"] = _first_difference(a, b)

    x = rand(time_shape)
    stats = time_entries({"eager": model, "graph": graph_model}, {"eager": [x], "graph": [x]}, timer="robust",
                         device=torch.device("cpu"), warmup=warmup, repeats=repeats, threads=threads)
    out["runtime_ms"] = {k: round(v["median"], 3) for k, v in stats.items()}
    out["runtime_ratio"] = round(stats["graph"]["median"] / stats["eager"]["median"], 4)
    out["time_shape"] = list(time_shape)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


# ---------------------------------------------------------------------------------------------------- the survey

def entry_folders(roots: Sequence[Path], baselines: bool) -> list[Path]:
    """The kit's ESR baselines (when asked) and every entry folder below ``roots``."""
    sys.path.insert(0, str(REPO))
    from ntirekit.core.registry import discover, iter_entry_folders

    folders = []
    if baselines:
        folders += sorted(e.folder for e in discover([BASELINES], include_defaults=False).select(track="esr"))
    for root in roots:
        folders += list(iter_entry_folders(root))
    return folders


def run_child(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`survey_one` in a child process; ``{"entry", "error"}`` when it fails or runs out of time."""
    with tempfile.TemporaryDirectory(prefix="export_survey_") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(folder), "--result", str(result),
               "--time-size", str(args.time_size), "--warmup", str(args.warmup), "--repeats", str(args.repeats),
               "--threads", str(args.threads), *(["--stand-in", *args.stand_in] if args.stand_in else []),
               *(["--static-only"] if args.static_only else [])]
        started = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"entry": folder.name, "error": f"timed out after {args.timeout} s"}
        if result.is_file():
            return json.loads(result.read_text())
        tail = [line for line in done.stderr.splitlines() if line.strip()]
        return {"entry": folder.name, "error": one_line(tail[-1] if tail else f"exit status {done.returncode}"),
                "seconds": round(time.perf_counter() - started, 1)}


def _g(value: Any, scale: float = 1e9) -> str:
    return "n/a" if value is None else f"{value / scale:.3f}"


def row(r: dict[str, Any]) -> str:
    """One table line of a survey result."""
    name = r.get("entry", "?")[:24]
    if "error" in r:
        return f"{name:24s} FAILED: {r['error']}"
    if r["export"] == "none":
        return f"{name:24s} {'none':7s} {r['why']}"
    eq = r["equal"]
    diffs = "".join("=" if eq[k] else "x" for k in FIELDS)
    missed = r["graph"].get("convs_missed") or 0
    ident = {True: "same", False: "DIFF", None: "-"}[r.get("graph_id_agree")]
    struct = {True: "same", False: "DIFF", None: "-"}[r.get("same_structure")]
    return (f"{name:24s} {r['export']:7s} {r['programs']:>3d} {'yes' if r['outputs_identical'] else 'NO':>4s} "
            f"{diffs:>7s} {r['eager']['params'] / 1e6:8.4f} {_g(r['eager']['macs_ntire2022'])}/"
            f"{_g(r['graph']['macs_ntire2022'])} {missed:>3d} {ident:>5s} {struct:>6s} "
            f"{r['runtime_ratio']:6.3f} {r['export_s']:7.1f} {r['seconds']:6.0f}")


HEADER = (f"{'entry':24s} {'export':7s} {'#pr':>3s} {'same':>4s} {'pMfaAc':>7s} {'params M':>8s} "
          f"{'G MACs 2022 eager/graph':23s} {'mis':>3s} {'id':>5s} {'struct':>6s} {'ratio':>6s} {'exp s':>7s} "
          f"{'tot s':>6s}")
LEGEND = ("'same': graph outputs bit-identical to eager at every size checked; 'pMfaAc': per field "
          "params, macs_ntire2022, macs_fvcore, activations, activations_fvcore, convs ('=' graph equals eager); "
          "'mis': convs_missed; 'id': graph_id of the dynamic and a static export at 256x256; 'struct': a static-only "
          "entry's programs at two sizes; 'ratio': runtime graph/eager (robust median, CPU, interleaved)")


def summary(results: list[dict[str, Any]]) -> str:
    """The survey's figures in a few lines."""
    lines = []
    ok = [r for r in results if "error" not in r]
    failed = [r for r in results if "error" in r]
    by = {k: [r for r in ok if r["export"] == k] for k in ("dynamic", "static", "none")}
    exported = by["dynamic"] + by["static"]
    lines.append(f"{len(results)} entries: {len(by['dynamic'])} export dynamically (H, W 64..512), "
                 f"{len(by['static'])} only statically, {len(by['none'])} not at all, {len(failed)} failed to run")
    for r in by["static"]:
        lines.append(f"  static  {r['entry']}: {r['why']}")
    for r in by["none"]:
        lines.append(f"  none    {r['entry']}: {r['why']}")
    for r in failed:
        lines.append(f"  failed  {r['entry']}: {r['error']}")
    for r in ok:
        if r.get("stand_ins"):
            lines.append(f"  {r['entry']} loaded with an empty stand-in for {', '.join(r['stand_ins'])} (imported, "
                         "never used)")
    same = [r for r in exported if r["outputs_identical"]]
    lines.append(f"outputs bit-identical to eager at every size checked: {len(same)}/{len(exported)}")
    for r in exported:
        if not r["outputs_identical"]:
            lines.append(f"  {r['entry']}: " + "; ".join(
                f"{c['shape'][2]}x{c['shape'][3]} max |diff| {c.get('max_abs_diff')} (eager repeats itself: "
                f"{c.get('eager_repeats_itself')})" for c in r["outputs"] if not c["identical"]))
    for k in FIELDS:
        equal = [r for r in exported if r["equal"][k]]
        lines.append(f"{k:20s} graph == eager: {len(equal)}/{len(exported)}")
        for r in exported:
            if not r["equal"][k]:
                e, g = r["eager"][k], r["graph"][k]
                rel = f" ({(g - e) / e:+.4%})" if isinstance(e, int) and isinstance(g, int) and e else ""
                lines.append(f"  {r['entry']}: eager {e}, graph {g}{rel}")
    for k in MISSED:
        hits = [r for r in exported if r["graph"].get(k)]
        lines.append(f"{k:20s} non-zero: {len(hits)}" + "".join(
            f"\n  {r['entry']}: {r['graph'][k]} (eager functional_convs {r['eager'].get('functional_convs')})"
            for r in hits))
    agree = [r for r in by["dynamic"] if r.get("graph_id_agree")]
    lines.append(f"graph_id dynamic == static at 256x256: {len(agree)}/{len(by['dynamic'])}"
                 + "".join(f"\n  differs: {r['entry']}" for r in by["dynamic"] if not r.get("graph_id_agree")))
    struct = [r for r in by["static"] if r.get("same_structure")]
    lines.append(f"static-only entries with one structure at two sizes: {len(struct)}/{len(by['static'])}"
                 + "".join(f"\n  {r['entry']}: same ops {r['same_ops']}; {r.get('structure_difference')}"
                           for r in by["static"] if not r.get("same_structure")))
    ratios = sorted(r["runtime_ratio"] for r in exported)
    if ratios:
        lines.append(f"runtime graph/eager (CPU, robust median, interleaved): median {statistics.median(ratios):.3f}, "
                     f"range {ratios[0]:.3f}..{ratios[-1]:.3f} over {len(ratios)} entries")
    seconds = [r.get("seconds") or 0 for r in results]
    lines.append(f"time per entry: median {statistics.median(seconds):.0f} s, total {sum(seconds) / 60:.1f} min"
                 if seconds else "")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="*", type=Path, help="folders of imported entries (ntirekit import-ntire)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false", help="leave the kit's out")
    parser.add_argument("--only", nargs="+", default=None, help="survey only these entry names")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per entry (default 1800)")
    parser.add_argument("--time-size", type=int, default=128, help="square input of the runtime ratio (LR pixels)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each child (default 1)")
    parser.add_argument("--stand-in", nargs="*", default=["torchvision"],
                        help="packages replaced by an empty stand-in where they cannot be imported (default "
                             "torchvision: two teams import it without using it; the record says so)")
    parser.add_argument("--static-only", action="store_true",
                        help="export one static program per shape, no dynamic export (for an entry whose dynamic "
                             "export runs out of time)")
    parser.add_argument("--json", type=Path, default=None, help="also write every result to this file")
    parser.add_argument("--summary", nargs="+", type=Path, default=None,
                        help="print the table and summary of earlier --json files, merged, and exit")
    parser.add_argument("--one", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one is not None:
        result = survey_one(args.one.resolve(), time_hw=args.time_size, warmup=args.warmup, repeats=args.repeats,
                            threads=args.threads, stand_ins=args.stand_in,
                            static_only=args.static_only)
        args.result.write_text(json.dumps(result, default=str))
        return 0
    if args.summary:
        merged = {r["entry"]: r for path in args.summary for r in json.loads(path.read_text())}   # later files win
        results = list(merged.values())
    else:
        folders = entry_folders(args.roots, args.baselines)
        if args.only:
            folders = [f for f in folders if f.name in set(args.only)]
        results = []
        print(HEADER, flush=True)
        for folder in folders:
            results.append(run_child(folder, args))
            print(row(results[-1]), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1, default=str))
        print()
    if args.summary:
        print(HEADER)
        for r in results:
            print(row(r))
        print()
    print(LEGEND + "\n")
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
