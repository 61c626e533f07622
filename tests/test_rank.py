"""Leaderboards: protocols, ranks (ties, gates, missing values), scores, runs, devices, inputs, renderings, the plot.

Every expected rank below was worked out by hand from the table in the test, not by the code under test.
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct

import pytest

from ntirekit.rank import (
    InputError, LeaderboardError, ProtocolError, available_protocols, build_leaderboard, competition_ranks,
    load_protocol, load_results, pareto_front, published_table, read_published_csv, render, render_records, score,
)
from ntirekit.rank.metrics import extract, psnr_split
from ntirekit.rank.protocol import load_protocol_file

E, E2 = math.e, math.e ** 2
W2024 = {"runtime_ms": 0.7, "flops_g": 0.15, "params_m": 0.15}

GPU_A = {"device": "cuda", "kind": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54", "cuda": "12.4",
         "cudnn": 90100, "torch": "2.3.0", "cpu": "Xeon", "threads": 16, "precision": "fp32"}
GPU_B = {**GPU_A, "gpu": "NVIDIA RTX A6000"}


def row(entry, psnr_val=None, psnr_test=None, runtime_ms=None, params_m=None, flops_g=None, acts_m=None,
        mem_mb=None, **extra):
    """A record in table units (as a published row is), missing values left out."""
    values = dict(psnr_val=psnr_val, psnr_test=psnr_test, runtime_ms=runtime_ms, params_m=params_m,
                  flops_g=flops_g, acts_m=acts_m, mem_mb=mem_mb)
    return {"entry": entry, "status": "ok", **{k: v for k, v in values.items() if v is not None}, **extra}


def eval_record(entry, device=GPU_A, **fields):
    """A record shaped like ``ntirekit eval`` writes them (raw counts, runtime object, MiB)."""
    return {"entry": entry, "track": "overall", "status": "ok", "device": device, **fields}


def by_entry(lb):
    return {r.label: r for r in lb.rows}


# ------------------------------------------------------------------------------------------------ pure functions

def test_competition_ranks_share_the_best_rank_and_skip():
    assert competition_ranks([1.0, 2.0, 2.0, 3.0]) == [1, 2, 2, 4]
    assert competition_ranks([5.0, 1.0, 1.0, 2.0]) == [4, 1, 1, 3]
    assert competition_ranks([29.1, 29.3, 29.1], higher_is_better=True) == [2, 1, 2]
    assert competition_ranks([7.0, 7.0, 7.0]) == [1, 1, 1]
    assert competition_ranks([]) == []


def test_score_of_the_baseline_is_e_squared_and_of_half_the_baseline_is_e():
    base = {"runtime_ms": 13.54, "flops_g": 19.67, "params_m": 0.317}
    assert score(base, base, W2024) == pytest.approx(7.3891, abs=5e-5)
    half = {k: v / 2 for k, v in base.items()}
    assert score(half, base, W2024) == pytest.approx(2.7183, abs=5e-5)
    # only the runtime halved: 0.7·e + 0.15·e² + 0.15·e² = 1.9028 + 2.2167 = 4.1195
    assert score({**base, "runtime_ms": 6.77}, base, W2024) == pytest.approx(0.7 * E + 0.3 * E2)
    assert 0.7 * E + 0.3 * E2 == pytest.approx(4.1195, abs=5e-5)


def test_pareto_front_minimises_x_and_maximises_y():
    points = [(27.11, 29.00), (41.97, 29.04), (50.86, 29.13),   # 0,1,2: a staircase, all on the front
              (45.00, 28.98),                                   # 3: slower and worse than 1
              (41.97, 29.00),                                   # 4: as fast as 1 but worse
              (20.00, 28.90),                                   # 5: fastest
              (27.11, 29.00)]                                   # 6: identical to 0: both kept
    assert pareto_front(points) == [5, 0, 6, 1, 2]
    assert pareto_front([(1.0, 1.0)]) == [0]


@pytest.mark.parametrize("record, split", [
    ({"dataset": "DIV2K_valid"}, "val"), ({"dataset": "div2k-lsdir-valid"}, "val"),
    ({"dataset": "DIV2K_LSDIR_test"}, "test"), ({"dataset": "/data/DIV2K_test_LR"}, "test"),
    ({"dataset": "div2k", "split": "val"}, "val"), ({"dataset": {"name": "DIV2K", "split": "test"}}, "test"),
    ({"dataset": "sample"}, None), ({"dataset": "Set5"}, None), ({}, None),
])
def test_psnr_split_from_split_field_or_dataset_name(record, split):
    assert psnr_split(record) == split


def test_extract_converts_eval_records_to_table_units():
    rec = eval_record("rlfn_ntire", params=317218, macs_ntire2022=19.70e9, macs_fvcore=19.6749e9,
                      activations=80.05e6, convs=39, max_memory_mib=377.91,
                      runtime_ms={"mean": 27.11, "median": 26.5, "timer": "robust"})
    got = extract(rec, "macs_ntire2022", "mean")
    assert got == pytest.approx({"runtime_ms": 27.11, "params_m": 0.317218, "flops_g": 19.70, "acts_m": 80.05,
                                 "mem_mb": 377.91, "convs": 39})
    got = extract(rec, "macs_fvcore", "median")
    assert got["flops_g"] == pytest.approx(19.6749) and got["runtime_ms"] == 26.5
    # headline: the robust timer's median, the ntire timer's mean; a lone statistic otherwise
    assert extract(rec, runtime_stat="headline")["runtime_ms"] == 26.5
    ntire = {**rec, "runtime_ms": {"mean": 27.11, "median": 26.5, "timer": "ntire"}}
    assert extract(ntire, runtime_stat="headline")["runtime_ms"] == 27.11
    assert extract({"entry": "x", "runtime_ms": {"mean": 3.0}})["runtime_ms"] == 3.0
    psnr = extract(eval_record("x", dataset="DIV2K_valid", psnr_db=29.0, images=[]))
    assert psnr == {"psnr_val": 29.0}
    assert extract(eval_record("x", psnr_db={"valid": 29.0, "test": 28.7})) == {"psnr_val": 29.0, "psnr_test": 28.7}
    assert extract(eval_record("x", params=None, runtime_ms={"mean": None})) == {}


# ---------------------------------------------------------------------------------------------------- protocols

def test_packaged_protocols_carry_the_published_constants():
    assert available_protocols() == ["ntire2022", "ntire2024", "ntire2025", "ntire2026"]
    p22 = load_protocol("ntire2022")
    assert list(p22.tracks) == ["runtime", "complexity", "overall"] and p22.default_track == "runtime"
    assert p22.track("complexity").metrics == ("params_m", "flops_g")
    assert p22.track("overall").metrics == ("runtime_ms", "params_m", "flops_g", "acts_m", "mem_mb")
    assert [(g.metric, g.min) for g in p22.gate().gates] == [("psnr_val", 28.95), ("psnr_test", 28.65)]
    assert [(g.metric, g.min) for g in p22.gate("rules").gates] == [("psnr_val", 29.00)]
    assert p22.gate("none") is None and p22.reference == ("imdn_baseline", "rfdn") and p22.flops == "macs_ntire2022"
    expected = {"ntire2024": ("rlfn_ntire", 13.54, 19.67, 0.317, 0.7),
                "ntire2025": ("efdn", 16.69, 16.70, 0.276, 0.7),
                "ntire2026": ("span", 7.74, 9.83, 0.151, 0.8)}
    for name, (entry, ms, g, m, w_runtime) in expected.items():
        p = load_protocol(name)
        assert p.baseline_entry == entry and p.flops == "macs_fvcore"
        assert dict(p.baseline) == {"runtime_ms": ms, "flops_g": g, "params_m": m}
        weights = dict(p.track().weights)
        assert weights["runtime_ms"] == w_runtime and sum(weights.values()) == pytest.approx(1.0)
        assert [(x.metric, x.min) for x in p.gate().gates] == [("psnr_val", 26.90), ("psnr_test", 26.99)]


def test_user_protocol_from_toml(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('''
name = "mine"
reference = ["ref"]
[directions]
convs = "higher"
[gates.strict]
psnr_val = { min = 29.0, max = 40.0 }
[tracks.speed_quality]
metrics = ["runtime_ms", "psnr_val"]
''', encoding="utf-8")
    proto = load_protocol_file(path)
    assert proto.default_track == "speed_quality" and proto.default_gate == "strict"
    assert proto.higher_is_better("psnr_val") and proto.higher_is_better("convs")
    records = [row("a", psnr_val=29.5, runtime_ms=10.0), row("b", psnr_val=29.2, runtime_ms=8.0),
               row("c", psnr_val=29.5, runtime_ms=12.0), row("d", psnr_val=28.9, runtime_ms=1.0),
               row("ref", psnr_val=30.0, runtime_ms=1.0)]
    lb = build_leaderboard(records, str(path))
    rows = by_entry(lb)
    # runtime: b 1, a 2, c 3; psnr (higher): a 1, c 1, b 3; sums a 3, b 4, c 4 -> a 1, b 2, c 2
    assert {k: (rows[k].ranks["runtime_ms"], rows[k].ranks["psnr_val"], rows[k].total, rows[k].rank)
            for k in "abc"} == {"a": (2, 1, 3, 1), "b": (1, 3, 4, 2), "c": (3, 1, 4, 2)}
    assert rows["d"].status == "not ranked" and "psnr_val 28.90 dB fails the gate" in rows["d"].reason
    assert rows["ref"].status == "reference" and rows["ref"].rank is None


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n[tracks.t]\nmetrics = ["runtime_ms", "latency"]\n',
     "[tracks.t] metrics: unknown metric 'latency'"),
    ('name = "x"\n[gates.g]\npsnr = 29\n[tracks.t]\nmetrics = ["runtime_ms"]\n', "[gates.g]: unknown metric 'psnr'"),
    ('name = "x"\n[tracks.t]\nmethod = "score"\nweights = { psnr_val = 1.0 }\n', "psnr_val is higher-is-better"),
    ('name = "x"\n[tracks.t]\nmethod = "vote"\nmetrics = ["runtime_ms"]\n', "'vote' is not one of rank_sum, score"),
    ('name = "x"\n[tracks.t]\nmetrics = ["runtime_ms"]\n[directions]\nruntime_ms = "up"\n', "'up' is not one of"),
    ('name = "x"\nwieghts = 1\n[tracks.t]\nmetrics = ["runtime_ms"]\n', "unknown key 'wieghts'"),
    ('name = "x"\n', "a protocol needs at least one track"),
    ('name = "x"\n[tracks.t\n', "not valid TOML"),
])
def test_bad_protocol_files_give_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert message in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)


def test_unknown_protocol_track_and_gate():
    with pytest.raises(ProtocolError, match="unknown protocol 'ntire1999'"):
        load_protocol("ntire1999")
    with pytest.raises(ProtocolError, match="no track 'speed'.*runtime, complexity, overall"):
        build_leaderboard([row("a", runtime_ms=1.0)], "ntire2022", "speed")
    with pytest.raises(ProtocolError, match="no gate 'loose'"):
        build_leaderboard([row("a", runtime_ms=1.0)], "ntire2022", gate="loose")


# --------------------------------------------------------------------------- ranks: ties, gates, missing values

def hand_table():
    """Worked by hand under ntire2022 (gate final: valid >= 28.95 and test >= 28.65).

    entry  val    test   ms    params flops acts mem
    A      29.10  28.80  10.0  0.30   20    50   100
    B      29.05  28.70  10.0  0.25   25    60   100
    C      29.00  28.70  12.0  0.30   15    40    90
    G      28.95  28.65  11.0  0.40   30    70   120   exactly at both gates: ranked
    D      28.94  28.90   5.0  0.10   10    30    80   valid below 28.95: not ranked
    E      29.00  28.60   9.0  0.50   40    80   130   test below 28.65: not ranked
    F      29.20  28.90   --   0.10   10    30    80   no runtime
    H      failed
    imdn_baseline (reference)
    """
    return [row("A", 29.10, 28.80, 10.0, 0.30, 20, 50, 100), row("B", 29.05, 28.70, 10.0, 0.25, 25, 60, 100),
            row("C", 29.00, 28.70, 12.0, 0.30, 15, 40, 90), row("G", 28.95, 28.65, 11.0, 0.40, 30, 70, 120),
            row("D", 28.94, 28.90, 5.0, 0.10, 10, 30, 80), row("E", 29.00, 28.60, 9.0, 0.50, 40, 80, 130),
            row("F", 29.20, 28.90, None, 0.10, 10, 30, 80),
            {"entry": "H", "status": "failed", "error": "RuntimeError: CUDA out of memory"},
            row("imdn_baseline", 29.13, 28.78, 50.86, 0.893936, 58.53, 154.14, 471.76)]


def test_overall_rank_sum_by_hand():
    lb = build_leaderboard(hand_table(), "ntire2022", "overall")
    rows = by_entry(lb)
    # runtime: A 1, B 1, G 3, C 4 | params: B 1, A 2, C 2, G 4 | flops: C 1, A 2, B 3, G 4
    # acts: C 1, A 2, B 3, G 4 | memory: C 1, A 2, B 2, G 4
    # sums: A 9, B 10, C 9, G 19 -> A 1, C 1, B 3, G 4
    expected = {"A": ([1, 2, 2, 2, 2], 9, 1), "B": ([1, 1, 3, 3, 2], 10, 3),
                "C": ([4, 2, 1, 1, 1], 9, 1), "G": ([3, 4, 4, 4, 4], 19, 4)}
    metrics = ["runtime_ms", "params_m", "flops_g", "acts_m", "mem_mb"]
    assert {k: ([rows[k].ranks[m] for m in metrics], rows[k].total, rows[k].rank) for k in expected} == expected
    assert [r.label for r in lb.rows] == ["A", "C", "B", "G", "imdn_baseline", "D", "E", "F", "H"]
    assert rows["imdn_baseline"].status == "reference" and rows["imdn_baseline"].rank is None
    assert rows["D"].reason == "psnr_val 28.94 dB fails the gate (psnr_val ≥ 28.95 dB)"
    assert rows["E"].reason == "psnr_test 28.60 dB fails the gate (psnr_test ≥ 28.65 dB)"
    assert rows["F"].reason == "no runtime_ms"
    assert rows["H"].reason == "failed: RuntimeError: CUDA out of memory"
    assert all(rows[k].status == "not ranked" and rows[k].rank is None for k in "DEFH")


def test_runtime_and_complexity_tracks_by_hand():
    rows = by_entry(build_leaderboard(hand_table(), "ntire2022", "runtime"))
    assert {k: rows[k].rank for k in "ABCG"} == {"A": 1, "B": 1, "G": 3, "C": 4}
    assert rows["F"].status == "not ranked"
    # complexity ranks F too (it has params and FLOPs):
    # params: F 1, B 2, A 3, C 3, G 5 | flops: F 1, C 2, A 3, B 4, G 5 | sums F 2, C 5, A 6, B 6, G 10
    rows = by_entry(build_leaderboard(hand_table(), "ntire2022", "complexity"))
    assert {k: (rows[k].total, rows[k].rank) for k in "ABCFG"} == {
        "F": (2, 1), "C": (5, 2), "A": (6, 3), "B": (6, 3), "G": (10, 5)}


def test_the_rules_gate_and_no_gate():
    # rules: valid >= 29.00 only. G (28.95) and D (28.94) out; E (29.00, test 28.60) in.
    rows = by_entry(build_leaderboard(hand_table(), "ntire2022", "runtime", gate="rules"))
    assert {k: rows[k].rank for k in "ABCE"} == {"E": 1, "A": 2, "B": 2, "C": 4}
    assert rows["G"].status == rows["D"].status == "not ranked"
    rows = by_entry(build_leaderboard(hand_table(), "ntire2022", "runtime", gate="none"))
    # D 5, E 9, A 10, B 10, G 11, C 12
    assert {k: rows[k].rank for k in "ABCDEG"} == {"D": 1, "E": 2, "A": 3, "B": 3, "G": 5, "C": 6}


def test_ranks_use_unrounded_values():
    lb = build_leaderboard([row("slow", runtime_ms=10.004), row("fast", runtime_ms=10.001),
                            row("tie", runtime_ms=10.001)], "ntire2022", "runtime")
    rows = by_entry(lb)
    assert {k: rows[k].rank for k in rows} == {"fast": 1, "tie": 1, "slow": 3}
    text = render(lb, "table")
    assert "10.00 (1)" in text and "10.00 (3)" in text


def test_a_gate_on_a_metric_no_result_has_is_refused_loudly_and_rows_marked_ungated():
    lb = build_leaderboard([row("a", runtime_ms=2.0), row("b", runtime_ms=1.0)], "ntire2022", "runtime")
    assert [(r.label, r.rank) for r in lb.rows] == [("b", 1), ("a", 2)]
    assert lb.notes[0].startswith("GATE NOT APPLIED: gate 'final' has no psnr_val and psnr_test to check")
    assert "'valid'" in lb.notes[0] and "'test'" in lb.notes[0]          # the naming rule, in the same line
    assert lb.ungated == ("psnr_val", "psnr_test")
    assert all(r.notes == ["ungated (no psnr_val or psnr_test)"] for r in lb.rows)
    # a gate of none: nothing ungated
    lb = build_leaderboard([row("a", runtime_ms=2.0)], "ntire2022", "runtime", gate="none")
    assert lb.ungated == () and lb.rows[0].notes == []
    # but where some results have it, a result without it is not ranked
    lb = build_leaderboard([row("a", 29.0, 28.7, runtime_ms=2.0), row("b", runtime_ms=1.0)], "ntire2022", "runtime")
    assert by_entry(lb)["b"].reason == "no psnr_val for the gate (psnr_val ≥ 28.95 dB)"


def test_rank_references():
    records = [r for r in hand_table() if r["entry"] in ("A", "imdn_baseline")]
    rows = by_entry(build_leaderboard(records, "ntire2022", "runtime", rank_references=True))
    assert (rows["A"].rank, rows["imdn_baseline"].rank) == (1, 2)


# --------------------------------------------------------------------------------------------------------- scores

def score_records(protocol="ntire2024"):
    base = load_protocol(protocol).baseline
    entry = load_protocol(protocol).baseline_entry
    ok = dict(psnr_val=27.0, psnr_test=27.1)
    return [row(entry, runtime_ms=base["runtime_ms"], flops_g=base["flops_g"], params_m=base["params_m"], **ok),
            row("half", runtime_ms=base["runtime_ms"] / 2, flops_g=base["flops_g"] / 2,
                params_m=base["params_m"] / 2, **ok),
            row("fast_only", runtime_ms=base["runtime_ms"] / 2, flops_g=base["flops_g"],
                params_m=base["params_m"], **ok)]


def test_score_protocols_with_published_constants():
    lb = build_leaderboard(score_records("ntire2024"), "ntire2024")
    rows = by_entry(lb)
    assert rows["rlfn_ntire"].status == "reference" and rows["rlfn_ntire"].total == pytest.approx(7.3891, abs=5e-5)
    assert rows["half"].total == pytest.approx(2.7183, abs=5e-5) and rows["half"].rank == 1
    assert rows["fast_only"].total == pytest.approx(0.7 * E + 0.3 * E2) and rows["fast_only"].rank == 2
    assert "7.3891" in render(lb) and "2.7183" in render(lb)
    rows = by_entry(build_leaderboard(score_records("ntire2026"), "ntire2026"))
    assert rows["span"].total == pytest.approx(E2) and rows["half"].total == pytest.approx(E)
    assert rows["fast_only"].total == pytest.approx(0.8 * E + 0.2 * E2)
    rows = by_entry(build_leaderboard(score_records("ntire2025"), "ntire2025"))
    assert rows["efdn"].total == pytest.approx(E2) and rows["half"].total == pytest.approx(E)


def test_score_gates():
    records = score_records() + [row("blurry", 26.80, 27.1, 1.0, 1.0, 0.1), row("close", 26.90, 26.99, 1.0, 1.0, 0.1)]
    rows = by_entry(build_leaderboard(records, "ntire2024"))
    assert rows["blurry"].status == "not ranked" and "26.80 dB fails the gate (psnr_val ≥ 26.90 dB)" in \
        rows["blurry"].reason
    assert rows["close"].status == "ranked"


def measured_pair(device, scale):
    """rlfn_ntire and an entry at half its runtime, FLOPs and params, on a device ``scale`` times slower."""
    return [eval_record("rlfn_ntire", device, runtime_ms={"mean": 20.0 * scale}, params=317218, macs_fvcore=19.6749e9,
                        max_memory_mib=100.0 * scale),
            eval_record("mine", device, runtime_ms={"mean": 10.0 * scale}, params=317218 / 2,
                        macs_fvcore=19.6749e9 / 2, max_memory_mib=50.0 * scale)]


def test_measured_baseline_makes_scores_comparable_across_devices():
    records = measured_pair(GPU_A, 1.0) + measured_pair(GPU_B, 2.3)
    with pytest.raises(LeaderboardError, match="2 devices that do not compare.*--baseline measured"):
        build_leaderboard(records, "ntire2024", baseline="published")
    # auto (the default): neither GPU is the RTX 3090 of the published constants and rlfn_ntire ran on both
    auto = build_leaderboard(records, "ntire2024")
    assert auto.baseline_mode == "measured" and auto.notes[0].startswith("BASELINE MEASURED: runtime_ms measured on "
                                                                         "NVIDIA H100 80GB HBM3; NVIDIA RTX A6000")
    lb = build_leaderboard(records, "ntire2024", baseline="measured")
    assert [r.total for r in auto.rows] == [r.total for r in lb.rows]
    rows = by_entry(lb)
    assert rows["mine [NVIDIA H100 80GB HBM3]"].total == pytest.approx(E)
    assert rows["mine [NVIDIA RTX A6000]"].total == pytest.approx(E)
    assert rows["rlfn_ntire [NVIDIA RTX A6000]"].total == pytest.approx(E2)
    assert rows["mine [NVIDIA RTX A6000]"].values["runtime_ms"].mean == pytest.approx(0.5)
    assert lb.normalised == ("runtime_ms", "mem_mb") and "Runtime [× rlfn_ntire]" in render(lb)
    # the baseline entry is configurable
    other = [{**r, "entry": "base"} if r["entry"] == "rlfn_ntire" else r for r in measured_pair(GPU_A, 1.0)]
    rows = by_entry(build_leaderboard(other, "ntire2024", baseline="measured", baseline_entry="base"))
    assert rows["mine"].total == pytest.approx(E)
    with pytest.raises(LeaderboardError, match="baseline entry 'rlfn_ntire' is not among the results"):
        build_leaderboard(other, "ntire2024", baseline="measured")


def test_measured_baseline_missing_on_one_device():
    records = measured_pair(GPU_A, 1.0) + [eval_record("lonely", GPU_B, runtime_ms={"mean": 3.0}, params=1000,
                                                       macs_fvcore=1e9)]
    rows = by_entry(build_leaderboard(records, "ntire2024", baseline="measured"))
    assert rows["lonely"].status == "not ranked"
    assert rows["lonely"].reason == "no rlfn_ntire runtime_ms on NVIDIA RTX A6000 to normalise by"


def test_rank_sum_normalised_by_the_baseline_on_each_device():
    # imdn_baseline at 50 ms on A and 100 ms on B; x at 0.5 of it on A, y at 0.4 of it on B
    records = [eval_record("imdn_baseline", GPU_A, runtime_ms={"mean": 50.0}),
               eval_record("x", GPU_A, runtime_ms={"mean": 25.0}),
               eval_record("imdn_baseline", GPU_B, runtime_ms={"mean": 100.0}),
               eval_record("y", GPU_B, runtime_ms={"mean": 40.0})]
    with pytest.raises(LeaderboardError, match="runtime_ms measured on 2 devices"):
        build_leaderboard(records, "ntire2022", "runtime")
    rows = by_entry(build_leaderboard(records, "ntire2022", "runtime", baseline="measured"))
    assert (rows["y"].rank, rows["x"].rank) == (1, 2)
    assert rows["y"].values["runtime_ms"].mean == pytest.approx(0.4)


# ------------------------------------------------------------------------------------------------ runs and merging

def test_runs_are_averaged_with_their_spread():
    records = [eval_record("a", runtime_ms={"mean": v}) for v in (10.0, 11.0, 12.0)] + \
              [eval_record("b", runtime_ms={"mean": 10.5})]
    lb = build_leaderboard(records, "ntire2022", "runtime")
    a = by_entry(lb)["a"].values["runtime_ms"]
    assert (a.mean, a.std, a.n) == (11.0, 1.0, 3)
    assert by_entry(lb)["b"].rank == 1 and by_entry(lb)["a"].rank == 2
    assert "11.00±1.00 (2)" in render(lb, "table")
    out = json.loads(render(lb, "json"))["rows"][1]["metrics"]["runtime_ms"]
    assert out == {"value": 11.0, "n": 3, "std": 1.0, "min": 10.0, "max": 12.0, "runs": [10.0, 11.0, 12.0], "rank": 2}
    line = next(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert line["entry"] == "b" and line["runtime_ms_n"] == "1"


def test_runs_pooled_in_one_record_count_as_runs():
    # what ``eval --runs 3`` writes (ntirekit.measure.runtime.pool_runs): the runs' headline figures under "runs"
    pooled = {"median": 11.0, "mean": 11.0, "runs": [10.0, 11.0, 12.0], "n_runs": 3, "timer": "robust", "n": 90}
    lb = build_leaderboard([eval_record("a", runtime_ms=pooled)], "ntire2022", "runtime")
    stat = lb.rows[0].values["runtime_ms"]
    assert (stat.mean, stat.std, stat.n) == (11.0, 1.0, 3)
    # an explicit statistic takes the record's single figure
    stat = build_leaderboard([eval_record("a", runtime_ms=pooled)], "ntire2022", "runtime",
                             runtime_stat="mean").rows[0].values["runtime_ms"]
    assert (stat.mean, stat.n) == (11.0, 1)


def test_runtimes_from_different_timers_do_not_compare():
    records = [eval_record("a", runtime_ms={"mean": 12.0, "median": 10.0, "timer": "robust"}),
               eval_record("b", runtime_ms={"mean": 11.0, "median": 10.5, "timer": "ntire"})]
    with pytest.raises(LeaderboardError, match="NVIDIA H100 80GB HBM3, robust timer: a; "
                                               "NVIDIA H100 80GB HBM3, ntire timer: b"):
        build_leaderboard(records, "ntire2022", "runtime")
    # the same timer compares: headline = median for robust
    records[1]["runtime_ms"]["timer"] = "robust"
    rows = by_entry(build_leaderboard(records, "ntire2022", "runtime"))
    assert (rows["a"].rank, rows["b"].rank) == (1, 2)


def test_files_of_one_entry_merge_by_entry_and_device():
    records = [eval_record("rlfn_ntire", dataset="DIV2K_valid", psnr_db=29.0),
               eval_record("rlfn_ntire", dataset="DIV2K", split="test", psnr_db=28.7),
               eval_record("rlfn_ntire", params=317218, macs_ntire2022=19.7e9, activations=80.05e6, convs=39,
                           runtime_ms={"mean": 27.11}, max_memory_mib=377.91)]
    lb = build_leaderboard(records, "ntire2022", "overall")
    assert len(lb.rows) == 1
    only = lb.rows[0]
    assert {m: round(s.mean, 6) for m, s in only.values.items()} == {
        "psnr_val": 29.0, "psnr_test": 28.7, "runtime_ms": 27.11, "params_m": 0.317218, "flops_g": 19.7,
        "acts_m": 80.05, "mem_mb": 377.91, "convs": 39}
    assert only.status == "ranked" and only.total == 5


def test_psnr_measured_elsewhere_joins_the_runtime_row():
    cpu = {"device": "cpu", "kind": "cpu", "cpu": "Xeon", "threads": 2, "precision": "fp32", "torch": "2.3.0"}
    records = [eval_record("a", cpu, dataset="DIV2K_valid", psnr_db=29.0),
               eval_record("a", cpu, dataset="DIV2K_test", psnr_db=28.7),
               eval_record("a", GPU_A, runtime_ms={"mean": 20.0})]
    lb = build_leaderboard(records, "ntire2022", "runtime")
    assert len(lb.rows) == 1 and lb.rows[0].rank == 1 and lb.rows[0].device_label == "NVIDIA H100 80GB HBM3"


def test_a_failed_run_beside_good_ones_is_noted():
    records = [eval_record("a", runtime_ms={"mean": 10.0}),
               {**eval_record("a"), "status": "failed", "error": "RuntimeError: flaky"}]
    (only,) = build_leaderboard(records, "ntire2022", "runtime").rows
    assert only.rank == 1 and only.notes[-1] == "1 failed record(s) ignored: RuntimeError: flaky"


def test_published_and_measured_rows_stay_apart():
    records = baselines_2022() + [eval_record("rfdn", runtime_ms={"mean": 9.0})]
    with pytest.raises(LeaderboardError, match="published \\(Titan Xp\\): .*NVIDIA H100"):
        build_leaderboard(records, "ntire2022", "runtime")
    lb = build_leaderboard(records, "ntire2022", "complexity")
    labels = [r.label for r in lb.rows]
    assert "rfdn [published (Titan Xp)]" in labels and "rfdn [NVIDIA H100 80GB HBM3]" in labels


def test_not_a_record():
    with pytest.raises(LeaderboardError, match="not a result record"):
        build_leaderboard([{"psnr_db": 3}], "ntire2022")
    with pytest.raises(LeaderboardError, match="no results to rank"):
        build_leaderboard([], "ntire2022")


# ---------------------------------------------------------------------------------------------------------- inputs

def test_load_results_reads_files_folders_and_csv(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(eval_record("a", runtime_ms={"mean": 1.0})), encoding="utf-8")
    (folder / "b.json").write_text(json.dumps(eval_record("b", runtime_ms={"mean": 2.0})), encoding="utf-8")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    table = tmp_path / "t.csv"
    table.write_text("entry,psnr_val,psnr_test,runtime_ms,params_m,flops_g,acts_m,mem_mb\nc,29,28.7,3,,,,\n",
                     encoding="utf-8")
    records = load_results([folder, table])
    assert [r["entry"] for r in records] == ["a", "b", "c"]
    assert records[2]["source"] == "published" and "params_m" not in records[2]


def test_published_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("entry,psnr_val,psnr_test,runtime_ms,params_m,acts_m,mem_mb\nx,1,2,3,4,5,6\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.csv: missing column 'flops_g'"):
        read_published_csv(bad)
    bad.write_text("entry,psnr_val,psnr_test,runtime_ms,params_m,flops_g,acts_m,mem_mb\nx,1,2,fast,4,5,6,7\n",
                   encoding="utf-8")
    with pytest.raises(InputError, match="line 2 \\(x\\): runtime_ms 'fast' is not a number"):
        read_published_csv(bad)
    with pytest.raises(InputError, match="no published table 'ntire1999'"):
        published_table("ntire1999")


def test_packaged_published_table_is_protocols_md_section_1_2():
    rows = {r["entry"]: r for r in published_table("ntire2022")}
    assert rows["imdn_baseline"]["runtime_ms"] == 50.86 and rows["imdn_baseline"]["params_m"] == 0.893936
    assert rows["rfdn"]["flops_g"] == 27.10 and rows["rfdn"]["mem_mb"] == 788.13 and rows["rfdn"]["convs"] == 64
    assert rows["ByteESR"]["psnr_val"] == 29.00 and rows["ByteESR"]["acts_m"] == 80.05    # RLFN, the winner
    assert rows["ByteESR"]["device"] == {"kind": "published", "gpu": "Titan Xp"}
    assert len(rows) == 35 + 8 + 2


#: The NTIRE 2022 ESR report's results table (ofsoundof/NTIRE2022_ESR, figs/results.png), transcribed apart from
#: the packaged CSV: per ranked team the published ranks (the subscripts) of runtime (= main track), params, FLOPs,
#: acts and memory, and the published rank-sums of sub-track 1 (params + FLOPs) and 2 (all five) with their ranks.
PUBLISHED_2022_RANKS = {  # team: (runtime, params, flops, acts, mem, sub1 sum, sub1 rank, sub2 sum, sub2 rank)
    "ByteESR": (1, 11, 11, 6, 4, 22, 11, 33, 2), "NJU_Jet": (2, 18, 19, 4, 1, 37, 18, 44, 6),
    "NEESR": (3, 4, 6, 5, 9, 10, 4, 27, 1), "Super": (4, 14, 12, 10, 15, 26, 12, 55, 10),
    "MegSR": (5, 9, 9, 8, 12, 18, 9, 43, 5), "rainbow": (6, 6, 10, 9, 3, 16, 8, 34, 3),
    "VMCL_Taobao": (7, 13, 16, 11, 10, 29, 14, 57, 11), "Bilibili AI": (8, 8, 7, 7, 11, 15, 7, 41, 4),
    "NKU-ESR": (9, 7, 5, 13, 14, 12, 5, 48, 7), "NJUST_RESTORARION": (10, 28, 26, 12, 13, 54, 27, 89, 15),
    "TOVBU": (11, 23, 20, 15, 27, 43, 21, 96, 19), "Alpan Team": (12, 15, 3, 16, 5, 18, 10, 51, 9),
    "Dragon": (13, 20, 18, 17, 2, 38, 19, 70, 13), "TieGuoDun Team": (14, 29, 25, 14, 22, 54, 27, 104, 21),
    "HiImageTeam": (15, 3, 4, 23, 25, 7, 3, 70, 13), "xilinxSR": (16, 34, 32, 18, 7, 66, 34, 107, 22),
    "cipher": (17, 26, 24, 24, 20, 50, 24, 111, 23), "NJU_MCG": (18, 5, 8, 27, 8, 13, 6, 66, 12),
    "IMGWLH": (19, 21, 13, 19, 19, 34, 17, 91, 17), "imglhl": (20, 24, 21, 21, 6, 45, 22, 92, 18),
    "whu_sigma": (21, 33, 30, 20, 28, 63, 32, 132, 30), "Aselsan Research": (22, 12, 15, 26, 23, 27, 13, 98, 20),
    "Drinktea": (23, 31, 28, 22, 17, 59, 31, 121, 27), "GDUT_SR": (24, 27, 23, 28, 34, 50, 24, 136, 31),
    "Giantpandacv": (25, 32, 31, 31, 31, 63, 32, 150, 34), "neptune": (26, 10, 29, 29, 29, 39, 20, 123, 29),
    "XPixel": (27, 1, 2, 3, 16, 3, 1, 49, 8), "NJUST_ESR": (28, 2, 1, 25, 33, 3, 1, 89, 15),
    "TeamInception": (29, 30, 27, 34, 26, 57, 30, 146, 33), "cceNBgdd": (30, 16, 17, 33, 18, 33, 16, 114, 24),
    "ZLZ": (31, 22, 33, 2, 30, 55, 29, 118, 26), "Express": (32, 17, 14, 30, 24, 31, 15, 117, 25),
    "Just Try": (33, 35, 35, 32, 35, 70, 35, 170, 35), "ncepu_explorers": (34, 25, 22, 35, 21, 47, 23, 137, 32),
    "mju_mnu": (35, 19, 34, 1, 32, 53, 26, 121, 27),
}
#: listed under the table as not ranked ("validation/testing PSNR not on par with the baseline")
NOT_RANKED_2022 = {"Virtual_Reality Team", "NTU607QCO-ESR", "Strong Tiger", "VAP", "Multicog", "Set5baby Team",
                   "NWPU_SweetDreamLab", "SSL"}


def test_published_2022_table_reranked_gives_the_published_ranks():
    """The whole 2022 table re-ranked by the kit (rank-sum protocol, the final gate) against the report's own ranks.

    The CSV holds values as printed (params to 3 decimals): where two teams print alike, the report (ranking the
    unrounded values) split them and the kit gives both the better rank (the tied groups below). Every other rank,
    and every rank-sum free of such ties, is the report's."""
    lb = build_leaderboard(published_table("ntire2022"), "ntire2022", "overall")
    rows = by_entry(lb)
    assert {r.label for r in lb.rows if r.status == "ranked"} == set(PUBLISHED_2022_RANKS)
    assert {r.label for r in lb.rows if r.status == "not ranked"} == NOT_RANKED_2022      # the final gate
    assert {r.label for r in lb.rows if r.status == "reference"} == {"rfdn", "imdn_baseline"}
    assert "fails the gate" in rows["VAP"].reason and rows["TieGuoDun Team"].rank is not None   # 28.95/28.65: on it
    ties = {"params_m": [{"rainbow", "NKU-ESR"}, {"ByteESR", "Aselsan Research"}, {"Super", "Alpan Team"},
                         {"cceNBgdd", "Express"}], "flops_g": [{"Dragon", "cceNBgdd"}]}
    metrics = ("runtime_ms", "params_m", "flops_g", "acts_m", "mem_mb")
    for k, metric in enumerate(metrics):
        for team, published in PUBLISHED_2022_RANKS.items():
            tied = next((g for g in ties.get(metric, []) if team in g), None)
            expected = min(PUBLISHED_2022_RANKS[t][k] for t in tied) if tied else published[k]
            assert rows[team].ranks[metric] == expected, (team, metric)
    untied = [t for t in PUBLISHED_2022_RANKS if not any(t in g for gs in ties.values() for g in gs)]
    assert len(untied) == 26
    for team in untied:
        assert rows[team].total == PUBLISHED_2022_RANKS[team][7], team                   # sub-track 2 rank-sum
    runtime = by_entry(build_leaderboard(published_table("ntire2022"), "ntire2022", "runtime"))
    assert {t: runtime[t].rank for t in PUBLISHED_2022_RANKS} == {t: r[0] for t, r in PUBLISHED_2022_RANKS.items()}
    complexity = by_entry(build_leaderboard(published_table("ntire2022"), "ntire2022", "complexity"))
    for team in untied:
        assert complexity[team].total == PUBLISHED_2022_RANKS[team][5], team             # sub-track 1 rank-sum
    # equal sums share a rank (XPixel and NJUST_ESR: both 3, both 1st, as published); the next one is skipped
    assert complexity["XPixel"].rank == complexity["NJUST_ESR"].rank == 1 and complexity["HiImageTeam"].rank == 3


# --------------------------------------------------------------- the three 2022 baselines, in every format

def baselines_2022():
    """The published rows of the three baselines of protocols.md §1.2 (RLFN: ByteESR, the 2022 winner)."""
    return [r for r in published_table("ntire2022") if r["entry"] in ("ByteESR", "rfdn", "imdn_baseline")]


def published_overall(**options):
    return build_leaderboard(baselines_2022(), "ntire2022", "overall", **options)


def markdown_rows(text):
    lines = [l for l in text.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[2:]]


def test_published_2022_as_the_final_table_ranks_it():
    # IMDN and RFDN are reference rows: RLFN is the only ranked entry
    lb = published_overall()
    assert [(r.label, r.status, r.rank) for r in lb.rows] == [
        ("ByteESR", "ranked", 1), ("imdn_baseline", "reference", None), ("rfdn", "reference", None)]
    md = markdown_rows(render(lb, "md"))
    assert md[0]["#"] == "1" and md[0]["Runtime [ms]"] == "27.11 (1)" and md[0]["Rank-sum"] == "5"
    assert md[1]["#"] == "ref" and md[1]["Runtime [ms]"] == "50.86" and md[1]["Rank-sum"] == "–"


def test_published_2022_ranked_together_every_format():
    """The three baselines ranked against each other (checkable by eye):

    runtime  27.11 < 41.97 < 50.86   -> RLFN 1, RFDN 2, IMDN 3
    params   0.317 < 0.433 < 0.894   -> RLFN 1, RFDN 2, IMDN 3
    FLOPs    19.70 < 27.10 < 58.53   -> RLFN 1, RFDN 2, IMDN 3
    acts     80.05 < 112.03 < 154.14 -> RLFN 1, RFDN 2, IMDN 3
    memory   377.91 < 471.76 < 788.13 -> RLFN 1, IMDN 2, RFDN 3
    sums     RLFN 5, RFDN 11, IMDN 14
    """
    lb = published_overall(rank_references=True)
    assert [(r.label, r.total, r.rank) for r in lb.rows] == [
        ("ByteESR", 5, 1), ("rfdn", 11, 2), ("imdn_baseline", 14, 3)]

    table = render(lb, "table")
    lines = [l for l in table.splitlines() if "ByteESR" in l or "imdn_baseline" in l or "rfdn" in l]
    assert lines[0].split()[:2] == ["1", "ByteESR"] and "27.11 (1)" in lines[0] and "377.91 (1)" in lines[0]
    assert lines[1].split()[:2] == ["2", "rfdn"] and "788.13 (3)" in lines[1]
    assert lines[2].split()[:2] == ["3", "imdn_baseline"] and "471.76 (2)" in lines[2]

    md = markdown_rows(render(lb, "md"))
    assert [(r["#"], r["Entry"], r["Runtime [ms]"], r["Params [M]"], r["Memory [MiB]"], r["Rank-sum"]) for r in md] == [
        ("1", "ByteESR", "27.11 (1)", "0.317 (1)", "377.91 (1)", "5"),
        ("2", "rfdn", "41.97 (2)", "0.433 (2)", "788.13 (3)", "11"),
        ("3", "imdn_baseline", "50.86 (3)", "0.894 (3)", "471.76 (2)", "14")]

    rows = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    assert [(r["rank"], r["entry"], r["runtime_ms"], r["runtime_ms_rank"], r["params_m"], r["rank_sum"])
            for r in rows] == [("1", "ByteESR", "27.11", "1", "0.317", "5"),
                               ("2", "rfdn", "41.97", "2", "0.433448", "11"),
                               ("3", "imdn_baseline", "50.86", "3", "0.893936", "14")]

    data = json.loads(render(lb, "json"))
    assert data["protocol"] == "ntire2022" and data["track"] == "overall"
    assert data["rows"][0]["entry"] == "ByteESR" and data["rows"][0]["metrics"]["runtime_ms"] == {
        "value": 27.11, "n": 1, "rank": 1}
    assert [r["metrics"]["mem_mb"]["rank"] for r in data["rows"]] == [1, 3, 2]

    tex = render(lb, "latex")
    assert r"1 & ByteESR & published & 29.00 & 28.72 & 27.11 (1) & 0.317 (1) & 19.70 (1) & 80.05 (1) & 377.91 (1) & 39 & 5 \\" \
        in tex
    assert r"3 & imdn\_baseline & published & 29.13 & 28.78 & 50.86 (3)" in tex
    assert tex.count(r"\toprule") == 1 and r"\end{tabular}" in tex


def test_published_2022_runtime_track_latex_and_gates():
    lb = build_leaderboard(baselines_2022(), "ntire2022", "runtime")
    tex = render(lb, "latex")
    assert r"1 & ByteESR & published & 29.00 & 28.72 & 27.11 (1) & 0.317 & 19.70" in tex   # only runtime is ranked here
    assert r"ref & imdn\_baseline" in tex and "Rank-sum" not in tex
    # RLFN's 29.00 dB meets the rules' 29.00 dB exactly
    lb = build_leaderboard(baselines_2022(), "ntire2022", "runtime", gate="rules")
    assert lb.rows[0].label == "ByteESR" and lb.rows[0].rank == 1


def test_render_records_for_eval():
    records = [eval_record("rlfn_ntire", params=317218, macs_ntire2022=19.7e9, runtime_ms={"mean": 9.0}),
               eval_record("rfdn", params=433448, macs_ntire2022=27.1e9, runtime_ms={"mean": 12.0})]
    text = render_records(records, "ntire2022", "complexity")
    assert "0.317 (1)" in text and "19.70 (1)" in text and "ref" in text
    assert render_records(records, "ntire2022", fmt="csv").startswith("rank,entry,status,device")
    with pytest.raises(ValueError, match="unknown format 'html'"):
        render_records(records, "ntire2022", fmt="html")


# ------------------------------------------------------------------------------------------------------------ plot

def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_pareto_png_is_written_and_shows_the_front(tmp_path):
    from matplotlib.image import imread

    from ntirekit.rank.plot import pareto_plot

    def front_red(path):
        pixels = imread(path)[..., :3]
        return int(((abs(pixels[..., 0] - 0xc4 / 255) < 0.04) & (abs(pixels[..., 1] - 0x4e / 255) < 0.04) &
                    (abs(pixels[..., 2] - 0x52 / 255) < 0.04)).sum())

    out, single = tmp_path / "plots" / "pareto.png", tmp_path / "single.png"
    assert pareto_plot(published_overall(rank_references=True), out) == ["ByteESR", "rfdn", "imdn_baseline"]
    # reference rows are never on the front, and the one ranked row left is no front: none drawn, none starred
    assert pareto_plot(published_overall(), single) == []
    width, height = png_size(out)
    assert width >= 600 and height >= 400
    assert front_red(out) > 300 and front_red(single) < 20   # the front line through three rows is drawn, not one


def test_pareto_plot_needs_psnr_and_runtime(tmp_path):
    from ntirekit.rank.plot import pareto_plot

    lb = build_leaderboard([row("a", runtime_ms=1.0)], "ntire2022", "runtime")
    with pytest.raises(LeaderboardError, match="nothing to plot"):
        pareto_plot(lb, tmp_path / "x.png")


# ------------------------------------------------------------------------------- weights, refused values, the tour's plot

CPU = {"device": "cpu", "kind": "cpu", "cpu": "Intel Xeon", "threads": 2, "torch": "2.13.0", "precision": "fp32"}
#: entry, DIV2K valid PSNR, CPU ms, params, MACs, weights: shaped like the README tour's own results
TOUR = [("imdn_baseline", 29.13, 4210, 893936, 58.53e9, "pretrained"), ("rfdn", 29.04, 3560, 433448, 27.10e9, "pretrained"),
        ("imdn", 29.10, 3270, 715176, 46.6e9, "pretrained"), ("rlfn", 29.07, 2259, 543740, 35.6e9, "pretrained"),
        ("rlfn_ntire", 29.00, 1850, 317218, 19.70e9, "pretrained"), ("efdn", 28.98, 1900, 276192, 16.70e9, "pretrained"),
        ("span", 28.99, 1020, 150688, 9.83e9, "pretrained"),
        ("team99_rlfn_pruned", 28.96, 1700, 430000, 28.2e9, "pretrained"),
        ("ecbsr", 24.55, 640, 599000, 39.3e9, "random"), ("rlfn_rep", 6.755, 9012, 543740, 35.6e9, "random"),
        ("gated_out", 28.80, 1200, 300000, 18e9, "pretrained")]


def tour_records(psnr_dataset="DIV2K_valid"):
    records = []
    for entry, psnr, ms, params, macs, weights in TOUR:
        records.append(eval_record(entry, device=CPU, params=params, macs_ntire2022=macs, activations=80e6,
                                   max_memory_mib=300.0, weights=weights,
                                   runtime_ms={"timer": "robust", "median": ms, "mean": ms}))
        records.append({**eval_record(entry, device=CPU, psnr_db=psnr, weights=weights), "track": "psnr",
                        "dataset": psnr_dataset})
    return records


def test_random_weights_are_listed_apart_in_every_format_and_ranked_only_when_allowed():
    lb = build_leaderboard(tour_records(), "ntire2022", "overall", gate="none")
    rows = by_entry(lb)
    assert rows["ecbsr"].status == rows["rlfn_rep"].status == "random weights"
    assert rows["ecbsr"].rank is None and rows["span"].rank == 1 and rows["rlfn"].weights == "pretrained"
    assert [r.entry for r in lb.rows][-2:] == ["ecbsr", "rlfn_rep"]          # after every other group
    table = render(lb, "table")
    ecbsr_line = next(l for l in table.splitlines() if " ecbsr " in l)
    assert ecbsr_line.split()[:3] == ["–", "ecbsr", "random"] and "not ranked: random weights" in ecbsr_line
    assert "Weights" in table.splitlines()[2]
    md = markdown_rows(render(lb, "md"))
    assert {r["Entry"]: r["Weights"] for r in md}["rlfn_rep"] == "random"
    assert r"ecbsr & random &" in render(lb, "latex")
    csv_rows = {r["entry"]: r for r in csv.DictReader(io.StringIO(render(lb, "csv")))}
    assert csv_rows["ecbsr"]["weights"] == "random" and csv_rows["ecbsr"]["status"] == "random weights"
    assert csv_rows["ecbsr"]["rank"] == "" and csv_rows["span"]["weights"] == "pretrained"
    assert {r["entry"]: r["weights"] for r in json.loads(render(lb, "json"))["rows"]}["rlfn_rep"] == "random"

    allowed = by_entry(build_leaderboard(tour_records(), "ntire2022", "overall", gate="none", allow_random=True))
    # 9 ranked rows (the two references are not): ecbsr's 640 ms is the fastest (1); its 0.599 M params come after
    # .151 .276 .300 .317 .430 .544 .544 (8th), its 39.3 G after 9.83 16.7 18 19.7 28.2 35.6 35.6 (8th)
    assert allowed["ecbsr"].status == "ranked" and allowed["ecbsr"].ranks["runtime_ms"] == 1
    assert allowed["ecbsr"].ranks["params_m"] == 8 and allowed["ecbsr"].ranks["flops_g"] == 8


@pytest.mark.parametrize("field, value, shown", [
    ("runtime_ms", {"mean": -3.0, "median": -3.0}, "-3.0"), ("runtime_ms", {"mean": 0.0, "median": 0.0}, "0.0"),
    ("runtime_ms", {"mean": float("nan"), "median": float("nan")}, "nan"), ("params", 0, "0"),
    ("params", -5, "-5"), ("macs_ntire2022", float("inf"), "inf"), ("macs_ntire2022", "lots", "'lots'"),
])
def test_non_positive_or_non_finite_runtime_params_flops_are_refused(field, value, shown):
    good = dict(params=317218, macs_ntire2022=19.7e9, activations=80e6, max_memory_mib=300.0,
                runtime_ms={"mean": 9.0, "median": 9.0})
    records = [eval_record("good", **good), eval_record("bad", **{**good, field: value})]
    lb = build_leaderboard(records, "ntire2022", "overall", gate="none")
    rows = by_entry(lb)
    assert rows["good"].rank == 1 and rows["bad"].status == "not ranked"
    metric = {"runtime_ms": "runtime_ms", "params": "params_m", "macs_ntire2022": "flops_g"}[field]
    assert metric not in rows["bad"].values                       # the value is refused, never shown as a figure
    refused_notes = [n for n in lb.notes if "refused" in n]
    assert refused_notes == [f"bad: {metric} {shown} refused: not a positive finite number"]


def test_tour_pareto_plot_axes_front_and_labels(tmp_path):
    from matplotlib.text import Text

    from ntirekit.rank.plot import pareto_figure, pareto_plot

    lb = build_leaderboard(tour_records(), "ntire2022", "overall", gate="rules")   # rules gate: psnr_val >= 29.00
    fig, front = pareto_figure(lb)
    # ranked by hand: rules gate 29.00 keeps imdn 29.10, rlfn 29.07, rlfn_ntire 29.00; references imdn_baseline, rfdn
    # front among the ranked (min runtime, max PSNR): rlfn_ntire 1850 ms, rlfn 2259 ms, imdn 3270 ms
    assert front == ["rlfn_ntire", "rlfn", "imdn"]
    assert by_entry(lb)["span"].status == "not ranked"             # span 28.99 fails the rules gate: off the front
    (ax,) = fig.axes
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0.0 and ax.get_xlim()[1] > 9012
    low, high = ax.get_ylim()
    assert 28.0 < low < 28.80 and 29.13 < high < 29.5             # random 6.75 / 24.55 dB do not stretch it
    labels = [t for t in ax.texts if t.get_text() and not t.get_text().startswith("gate")]
    assert {t.get_text() for t in labels} >= {"rlfn_rep (6.75 dB)", "ecbsr (24.55 dB)", "rlfn ★", "span"}
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "labels overlap"
    assert pareto_plot(lb, tmp_path / "tour.png") == front

    # runtimes over a wide range: log axis
    spread = [r if r.get("track") != "overall" or r["entry"] != "rlfn_rep" else
              {**r, "runtime_ms": {"timer": "robust", "median": 90120.0, "mean": 90120.0}} for r in tour_records()]
    fig, _ = pareto_figure(build_leaderboard(spread, "ntire2022", "overall", allow_random=True, gate="none"))
    assert fig.axes[0].get_xscale() == "log"


def test_a_reference_method_is_shown_as_a_reference_row_and_never_ranked():
    """The bicubic row (records with ``"reference": true``, written by the quality tracks for ``reference``
    entries) is listed with status reference, even with --rank-references off or on."""
    records = [*tour_records(), {**eval_record("bicubic", device=CPU, psnr_db=26.7, weights="none"), "track": "psnr",
                                 "dataset": "DIV2K_valid", "reference": True}]
    rows = by_entry(build_leaderboard(records, "ntire2022", "overall", gate="none"))
    assert rows["bicubic"].status == "reference" and rows["bicubic"].rank is None
    assert rows["span"].rank == 1


# ------------------------------------------------------------ every protocol on CPU records (issue 24, major 1)

def cpu_tour():
    """The tour-shaped CPU records with fvcore MACs too (the 2024-2026 protocols count FLOPs with fvcore)."""
    return [{**r, "macs_fvcore": r["macs_ntire2022"]} if "macs_ntire2022" in r else r for r in tour_records()]


def strict_json(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("protocol", ["ntire2022", "ntire2024", "ntire2025", "ntire2026"])
def test_every_protocol_ranks_cpu_records_in_every_format(protocol):
    """CPU runtimes of seconds (rlfn_rep 9012 ms: exp(2 x 9012 / 13.54) overflowed a float) rank under every
    protocol, and every format renders them (JSON strictly)."""
    lb = build_leaderboard(cpu_tour(), protocol, gate="none", allow_random=True)
    for fmt in ("table", "md", "csv", "latex"):
        assert ("rlfn\\_rep" if fmt == "latex" else "rlfn_rep") in render(lb, fmt)
    data = strict_json(render(lb, "json"))
    assert all(r["total"] is None or math.isfinite(r["total"]) for r in data["rows"])
    rlfn_rep = next(r for r in data["rows"] if r["entry"] == "rlfn_rep")
    assert rlfn_rep["status"] == "ranked" and math.isfinite(rlfn_rep["total"]), rlfn_rep
    if protocol != "ntire2022":
        assert lb.baseline_mode == "measured" and lb.notes[0].startswith("BASELINE MEASURED: runtime_ms measured "
                                                                         "on Intel Xeon, 2 threads, not on the")


def test_score_against_the_baseline_measured_on_the_cpu_by_hand():
    # ntire2024 on the tour's CPU figures, against rlfn_ntire measured there: 1850 ms, 19.70 G, 317218 params
    rows = by_entry(build_leaderboard(cpu_tour(), "ntire2024", gate="none"))
    span = 0.7 * math.exp(2 * 1020 / 1850) + 0.15 * math.exp(2 * 9.83 / 19.70) + 0.15 * math.exp(2 * 150688 / 317218)
    assert rows["span"].total == pytest.approx(span) and rows["span"].rank == 1
    assert rows["rlfn_ntire"].total == pytest.approx(E2) and rows["rlfn_ntire"].status == "reference"


def test_a_score_that_overflows_is_refused_in_one_line():
    lb = build_leaderboard(cpu_tour(), "ntire2024", baseline="published", gate="none", allow_random=True)
    rows = by_entry(lb)
    # 9012 / 13.54 = 665.6: exp(2 x 665.6) is beyond the largest float (exp(709.8))
    assert rows["rlfn_rep"].status == "not ranked" and rows["rlfn_rep"].total is None
    assert rows["rlfn_rep"].reason == ("score overflows: runtime_ms 666x the baseline's published on RTX 3090 "
                                       "(--baseline measured scores against rlfn_ntire timed on the same device)")
    # 4210 / 13.54 = 310.9: exp(621.9) is a float: scored (against constants that do not compare, as a note says)
    assert rows["imdn_baseline"].total == pytest.approx(0.7 * math.exp(2 * 4210 / 13.54), rel=1e-6)
    refused_notes = [n for n in lb.notes if n.startswith("SCORE REFUSED")]
    assert refused_notes == ["SCORE REFUSED for 1 row(s) (rlfn_rep): exp(2 x value / baseline) overflows; see each "
                             "row's reason"]
    assert any("these scores do not compare; measure rlfn_ntire in the same run" in n for n in lb.notes)
    # 2026 (span: 7.74 ms): everything over 709.78 / 2 x 7.74 = 2747 ms overflows
    rows = by_entry(build_leaderboard(cpu_tour(), "ntire2026", baseline="published", gate="none", allow_random=True))
    assert {r for r, row in rows.items() if row.reason.startswith("score overflows")} == {
        "imdn_baseline", "rfdn", "imdn", "rlfn_rep"}
    assert rows["rlfn"].total is not None                                        # 2259 ms: exp(583.7)


def test_auto_baseline_keeps_the_published_constants_on_their_gpu():
    rtx3090 = {**GPU_A, "gpu": "NVIDIA GeForce RTX 3090"}
    lb = build_leaderboard(measured_pair(rtx3090, 1.0), "ntire2024")
    assert lb.baseline_mode == "published" and not any(n.startswith("BASELINE") for n in lb.notes)
    # on another GPU without the baseline entry among the results: the published constants, and the note says so
    lonely = [r for r in measured_pair(GPU_A, 1.0) if r["entry"] != "rlfn_ntire"]
    lb = build_leaderboard(lonely, "ntire2024")
    assert lb.baseline_mode == "published" and any("these scores do not compare" in n for n in lb.notes)


# ------------------------------------------------------------------- runtimes that cannot rank (issue 24, major 6)

def test_runtime_spread_is_iqr_over_median_of_the_timers_statistics():
    from ntirekit.measure.runtime import summarize
    from ntirekit.rank.timing import MAX_RUNTIME_SPREAD, runtime_caveat, runtime_spread

    # sorted 10 11 12 13 30: quartiles at positions 1 and 3 (numpy's linear rule) = 11 and 13, median 12
    steady = {"runtime_ms": summarize([12.0, 10.0, 30.0, 11.0, 13.0], "robust")}
    assert runtime_spread(steady) == pytest.approx(2 / 12)
    assert steady["runtime_ms"]["cv"] > 0.4                 # one slow call: cv says noisy, the median is not
    assert runtime_caveat(steady) is None
    # sorted 10 10 20 30 30: quartiles 10 and 30, median 20: spread 1.0
    noisy = {"runtime_ms": summarize([10.0, 30.0, 20.0, 10.0, 30.0], "robust")}
    assert runtime_spread(noisy) == pytest.approx(1.0)
    assert runtime_caveat(noisy) == f"spread 1.00 > {MAX_RUNTIME_SPREAD:g}"
    assert runtime_caveat({"runtime_ms": {"mean": 5.0}}) is None                  # nothing to judge the spread by
    quick = {**steady, "options": {"extra": {"images": 2, "crop": 128}}}
    assert runtime_caveat(quick) == "quick run: first 2 inputs, 128x128 crops"
    assert runtime_caveat({**steady, "quick": True}) == "quick run"


#: eval's CPU quick run as its records say it (eval_cmd.quick_settings), and a full run
QUICK = {"extra": {"images": 2, "crop": 128}, "warmup": 1, "repeats": 3, "timer": "robust"}


def timed(entry, median, iqr, device=CPU, options=None, **fields):
    runtime = {"timer": "robust", "median": median, "mean": median, "iqr": iqr, "cv": iqr / median, "n": 6}
    rec = eval_record(entry, device=device, runtime_ms=runtime, **fields)
    return {**rec, "options": options} if options else rec


def quick_records():
    """A quick CPU run of three entries (the issue's figures: rlfn and rlfn_rep deploy 2x apart) with their PSNR."""
    counts = {"rlfn_ntire": (317218, 19.70e9), "rlfn": (543740, 33.99e9), "rlfn_rep": (543740, 33.99e9)}
    out = []
    for entry, ms, psnr in (("rlfn_ntire", 1850.0, 29.00), ("rlfn", 4234.0, 29.07), ("rlfn_rep", 2193.0, 29.07)):
        params, macs = counts[entry]
        out.append(timed(entry, ms, 0.4 * ms, options=QUICK, params=params, macs_ntire2022=macs, activations=80e6,
                         max_memory_mib=300.0, runtime_input="div2k-like, first 2 images, centre crops of at most "
                                                             "128x128", weights="pretrained"))
        out.append({**eval_record(entry, device=CPU, psnr_db=psnr, weights="pretrained"), "track": "psnr",
                    "dataset": "DIV2K_valid", "protocol": "challenge"})
    return out


def test_quick_run_runtimes_are_not_ranked_unless_allowed():
    lb = build_leaderboard(quick_records(), "ntire2022", "overall", gate="none")
    rows = by_entry(lb)
    assert {r.status for r in lb.rows} == {"not ranked"} and all(r.rank is None for r in lb.rows)
    assert rows["rlfn"].reason == "runtime cannot rank (quick run: first 2 inputs, 128x128 crops)"
    assert lb.notes[0].startswith("RUNTIMES CANNOT RANK: 3 of 3 row(s) (quick run: first 2 inputs, 128x128 crops; "
                                  "marked *): not ranked")
    # a track that does not rank runtime ranks the rows, and says the runtime shown does not compare
    complexity = build_leaderboard(quick_records(), "ntire2022", "complexity", gate="none")
    assert by_entry(complexity)["rlfn_ntire"].rank == 1
    assert complexity.notes[0].endswith("shown, not comparable; " + __import__("ntirekit.rank.timing",
                                                                              fromlist=["RULE"]).RULE)
    # --allow-unsteady: ranked (rlfn_ntire 1850 < rlfn_rep 2193 < rlfn 4234), each with the caveat
    allowed = build_leaderboard(quick_records(), "ntire2022", "runtime", gate="none", allow_unsteady=True)
    assert [(r.label, r.rank) for r in allowed.rows] == [("rlfn_ntire", 1), ("rlfn_rep", 2), ("rlfn", 3)]
    assert allowed.rows[0].notes == ["runtime ranked with a caveat (quick run: first 2 inputs, 128x128 crops)"]
    assert "ranked anyway (--allow-unsteady)" in allowed.notes[0]


def test_a_full_run_ranks_when_its_spread_is_within_the_bound():
    records = [timed("steady", 10.0, 2.5, device=GPU_A), timed("noisy", 8.0, 2.4, device=GPU_A)]  # 0.25, 0.30
    rows = by_entry(build_leaderboard(records, "ntire2022", "runtime", gate="none"))
    assert rows["steady"].rank == 1 and rows["steady"].runtime_caveat == ""
    assert rows["noisy"].status == "not ranked" and rows["noisy"].reason == "runtime cannot rank (spread 0.30 > 0.25)"


def test_runtimes_that_cannot_rank_are_marked_in_every_format():
    lb = build_leaderboard(quick_records(), "ntire2022", "overall", gate="none")
    table = render(lb, "table")
    line = next(l for l in table.splitlines() if l.split()[1:2] == ["rlfn"])
    assert "4234.00*" in line and "not ranked: runtime cannot rank (quick run" in line
    md = {r["Entry"]: r for r in markdown_rows(render(lb, "md"))}
    assert md["rlfn"]["Runtime [ms]"] == "4234.00\\*"
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO(render(lb, "csv")))}
    assert rows["rlfn"]["runtime_caveat"] == "quick run: first 2 inputs, 128x128 crops"
    assert rows["rlfn"]["status"] == "not ranked" and rows["rlfn"]["rank"] == ""
    data = strict_json(render(lb, "json"))
    assert {r["entry"]: r["runtime_caveat"] for r in data["rows"]}["rlfn_rep"] == \
        "quick run: first 2 inputs, 128x128 crops"
    tex = render(lb, "latex")
    assert r"rlfn\_rep & pretrained & 29.07 & 2193.00* &" in tex and "% RUNTIMES CANNOT RANK" in tex


def test_pareto_plot_shows_unsteady_runtimes_as_not_ranked_with_the_conditions(tmp_path):
    from ntirekit.rank.plot import pareto_figure

    fig, front = pareto_figure(build_leaderboard(quick_records(), "ntire2022", "overall", gate="none"))
    assert front == []
    texts = [t.get_text() for t in fig.texts]
    caveat = next(t for t in texts if "CAVEAT" in t)
    assert "runtimes of 3 row(s) cannot rank (quick run: first 2 inputs, 128x128 crops)" in " ".join(caveat.split())
    conditions = " ".join(" ".join(t.split()) for t in texts)
    assert "PSNR: DIV2K_valid (val, challenge)" in conditions
    assert "runtime: div2k-like, first 2 images, centre crops of at most 128x128; robust timer (median); on Intel " \
           "Xeon, 2 threads" in conditions
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"rlfn*", "rlfn_rep*", "rlfn_ntire*"} <= labels
    (ax,) = fig.axes
    assert ax.get_legend_handles_labels()[1] == ["not ranked (gate, refused value, runtime that cannot rank)"]


# ----------------------------------------------------------------------------------------- the plot's labels

def test_each_label_is_anchored_on_its_own_marker_and_nearest_to_it():
    """Every label's anchor is its row's marker, and its box lies nearer that marker's edge than any other marker's
    (the tour's imdn and imdn_baseline labels each sat beside the other's marker)."""
    from matplotlib.text import Text

    from ntirekit.rank.plot import pareto_figure

    def marker_gap(box, centre, radius):
        """Pixels from the box to the marker's edge."""
        dx = max(box.x0 - centre[0], 0.0, centre[0] - box.x1)
        dy = max(box.y0 - centre[1], 0.0, centre[1] - box.y1)
        return math.hypot(dx, dy) - radius

    for gate in ("rules", "none"):
        lb = build_leaderboard(tour_records(), "ntire2022", "overall", gate=gate)
        fig, _ = pareto_figure(lb)
        (ax,) = fig.axes
        renderer = fig.canvas.get_renderer()
        scale = fig.dpi / 72.0
        markers = []                                   # (data x, data y, centre in pixels, radius in pixels)
        for collection in ax.collections:
            sizes = collection.get_sizes()
            for k, (x, y) in enumerate(collection.get_offsets()):
                size = sizes[k] if len(sizes) > 1 else sizes[0]
                markers.append((x, y, ax.transData.transform((x, y)), math.sqrt(size) / 2 * scale))
        rows = {r.label: r for r in lb.rows}
        labels = [t for t in ax.texts if t.get_text().split(" ")[0].rstrip("*") in rows]
        assert len(labels) == len(tour_records()) // 2
        for text in labels:
            row = rows[text.get_text().split(" ")[0].rstrip("*")]
            x, y = text.xy
            assert x == row.values["runtime_ms"].mean
            if "dB)" not in text.get_text():                                        # not a row below the axis
                assert y == row.values["psnr_val"].mean
            own = [m for m in markers if m[0] == x and m[1] == y and m[3] > 4]  # its marker (not a front dot)
            assert own, text.get_text()
            box = Text.get_window_extent(text, renderer)
            mine = min(marker_gap(box, m[2], m[3]) for m in own)
            others = [marker_gap(box, m[2], m[3]) for m in markers if (m[0], m[1]) != (x, y)]
            assert all(mine <= other for other in others), (gate, text.get_text())


# ------------------------------------------------------------------------------------------------ LaTeX escaping

def test_latex_escapes_every_special_character():
    from ntirekit.rank.render import latex_escape

    cases = {"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
             "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
             "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "–": "--", "—": "---",
             "×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$", "±": r"$\pm$", "·": r"$\cdot$"}
    for char, latex in cases.items():
        assert latex_escape(f"a{char}b") == f"a{latex}b", char
    assert latex_escape("not ranked: random weights (--allow-random to rank)") == \
        r"not ranked: random weights (\texttt{-{}-allow-random} to rank)"
    assert latex_escape("x--y, a-b") == "x-{}-y, a-b"            # two hyphens never make a dash; one stays
    assert latex_escape("rlfn_ntire 100% & #1: $5 {a} ~b ^c \\d") == \
        r"rlfn\_ntire 100\% \& \#1: \$5 \{a\} \textasciitilde{}b \textasciicircum{}c \textbackslash{}d"


def test_latex_table_has_no_raw_dash_or_unescaped_option():
    records = [*tour_records(), eval_record("odd_%name", device=CPU,
                                                runtime_ms={"timer": "robust", "median": 5.0, "mean": 5.0})]
    tex = render(build_leaderboard(records, "ntire2022", "overall", gate="none"), "latex")
    body = [l for l in tex.splitlines() if not l.startswith("%")]
    assert not [l for l in body if "–" in l or "±" in l or "≥" in l]         # every sign typeset, none raw
    assert not [l for l in body if "--allow" in l]
    assert r"\texttt{-{}-allow-random}" in tex and r"odd\_\%name" in tex
    assert any(l.startswith("-- & ecbsr & random") for l in body)             # a rank that is none: an en dash


# ------------------------------------------------------------------------------- figures measured on graphs

def test_convolutions_the_official_counter_misses_are_ranked_with_its_figures():
    """Two networks with the same convolutions, one calling them through F.conv2d: the official 2022 counter sees
    a quarter of the second's; the graph's *_missed figures restore them, so the complexity track ties them."""
    honest = eval_record("honest", track="complexity", params=1000, macs_ntire2022=4_000_000, activations=400,
                         convs=4, macs_ntire2022_missed=0, activations_missed=0, convs_missed=0)
    hiding = eval_record("hiding", track="complexity", params=1000, macs_ntire2022=1_000_000, activations=100,
                         convs=1, macs_ntire2022_missed=3_000_000, activations_missed=300, convs_missed=3)
    assert extract(hiding)["flops_g"] == extract(honest)["flops_g"] == 4_000_000 / 1e9
    assert extract(hiding)["acts_m"] == 400 / 1e6 and extract(hiding)["convs"] == 4
    rows = by_entry(build_leaderboard([honest, hiding], "ntire2022", "complexity", gate="none"))
    assert rows["honest"].rank == rows["hiding"].rank == 1 and rows["hiding"].total == rows["honest"].total


def test_an_entry_whose_records_name_different_graphs_is_not_ranked():
    """The network whose outputs were scored (psnr record) must be the one timed and counted (overall record)."""
    def pair(entry, psnr_graph, timed_graph):
        timed = eval_record(entry, params=300_000, macs_ntire2022=20e9, activations=80e6, max_memory_mib=300,
                            runtime_ms={"median": 20.0, "mean": 20.0, "timer": "robust", "iqr": 0.1},
                            graph_id=timed_graph)
        scored = {"entry": entry, "track": "psnr", "status": "ok", "psnr_db": 29.1, "split": "valid",
                  "graph_id": psnr_graph}
        return [timed, scored]
    records = pair("same", "a" * 64, "a" * 64) + pair("switched", "b" * 64, "c" * 64) + \
        [eval_record("trusted", params=300_000, macs_ntire2022=20e9, activations=80e6, max_memory_mib=300,
                     runtime_ms={"median": 21.0, "mean": 21.0, "timer": "robust", "iqr": 0.1}),
         {"entry": "trusted", "track": "psnr", "status": "ok", "psnr_db": 29.1, "split": "valid"}]
    rows = by_entry(build_leaderboard(records, "ntire2022", "runtime", gate="none"))
    assert rows["same"].status == rows["trusted"].status == "ranked"
    assert rows["switched"].status == "not ranked" and "not the scored one" in rows["switched"].reason


def _overall(entry, runtime_ms, params=317218, **extra):
    return {"entry": entry, "track": "overall", "status": "ok", "params": params, "macs_ntire2022": 19.7e9,
            "macs_fvcore": 19.7e9, "activations": 80e6, "max_memory_mib": 300.0,
            "runtime_ms": {"median": runtime_ms, "mean": runtime_ms, "timer": "robust", "iqr": 0.1}, **extra}


def test_a_score_far_off_the_baseline_prints_in_e_notation_not_sixty_digits():
    """2025 score 0.7·exp(2·runtime/16.69) of a CPU runtime of 1160 ms is about 1.7e60: shown as such."""
    lb = build_leaderboard([_overall("team04_rlfn", 1160.38)], "ntire2025", gate="none", allow_random=True)
    row = next(r for r in lb.rows if r.entry == "team04_rlfn")
    expected = 0.7 * math.exp(2 * 1160.38 / 16.69) + 0.15 * math.exp(2 * 19.7 / 16.7) \
        + 0.15 * math.exp(2 * 0.317218 / 0.276)
    assert row.total == pytest.approx(expected, rel=1e-9)
    line = next(l for l in render(lb, "table").splitlines() if "team04_rlfn" in l)
    assert f"{expected:.4e}" in line and f"{expected:.4f}" not in line


def test_the_several_runs_note_comes_with_a_spread_only():
    """Two tracks' records repeat the same counts (one value, twice): no '±' and no note about runs; two runs that
    differ: both."""
    same = [_overall("a", 20.0), {**_overall("a", 20.0), "track": "complexity"}]
    lb = build_leaderboard(same, "ntire2022", "overall", gate="none", allow_random=True)
    assert not any("several runs" in n for n in lb.notes) and "±" not in render(lb, "table")
    differ = [_overall("a", 20.0), _overall("a", 24.0)]
    lb = build_leaderboard(differ, "ntire2022", "overall", gate="none", allow_random=True)
    assert any("several runs" in n for n in lb.notes) and "22.00±2.83" in render(lb, "table")
