"""``ntirekit leaderboard``: formats, inputs, options, and one clear error line for each bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from ntirekit.cli import main

GPU = {"device": "cuda", "kind": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54", "cuda": "12.4",
       "cudnn": 90100, "torch": "2.3.0", "cpu": "Xeon", "threads": 16, "precision": "fp32"}


def run(*args: str):
    return CliRunner().invoke(main, ["leaderboard", *args])


def one_error_line(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("fmt, expected", [
    ("table", "27.11 (1)"), ("md", " 27.11 (1) |"), ("latex", r"ByteESR & published & 29.00 & 28.72 & 27.11 (1)"),
    ("csv", "1,ByteESR,ranked,published (Titan Xp),published,29.0,28.72,27.11,1,"), ("json", '"entry": "ByteESR"'),
])
def test_published_table_in_every_format(fmt, expected):
    result = run("--published", "ntire2022", "--track", "runtime", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert expected in result.output


def test_published_2022_is_the_report_table():
    """35 ranked teams, 8 below the gate, 2 reference rows: the NTIRE 2022 report's table, re-ranked; sub-track 2's
    winner is NEESR (rank-sum 27, as published), the main track's ByteESR."""
    result = run("--published", "ntire2022", "--track", "overall", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    statuses = [r["status"] for r in rows]
    assert (statuses.count("ranked"), statuses.count("not ranked"), statuses.count("reference")) == (35, 8, 2)
    assert (rows[0]["entry"], rows[0]["rank_sum"]) == ("NEESR", "27")


def test_published_csv_file_ranked_together(tmp_path):
    from importlib import resources

    table = tmp_path / "ntire2022.csv"
    lines = (resources.files("ntirekit.rank") / "published" / "ntire2022_esr.csv").read_text(encoding="utf-8")
    table.write_text("\n".join(line for line in lines.splitlines()
                               if line.startswith(("entry,", "ByteESR,", "rfdn,", "imdn_baseline,"))) + "\n",
                     encoding="utf-8")
    result = run(str(table), "--track", "overall", "--rank-references", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["rank"], r["entry"], r["rank_sum"]) for r in rows] == [
        ("1", "ByteESR", "5"), ("2", "rfdn", "11"), ("3", "imdn_baseline", "14")]


def test_result_folder_score_protocol_with_measured_baseline(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for entry, ms, params, macs in [("rlfn_ntire", 20.0, 317218, 19.6749e9), ("mine", 10.0, 158609, 9.83745e9)]:
        rec = {"entry": entry, "track": "overall", "status": "ok", "device": GPU, "params": params,
               "macs_fvcore": macs, "runtime_ms": {"mean": ms, "median": ms}}
        (folder / f"{entry}__overall.json").write_text(json.dumps(rec), encoding="utf-8")
    result = run(str(folder), "--protocol", "ntire2024", "--baseline", "measured", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["entry"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["mine"]["rank"] == 1 and rows["mine"]["total"] == pytest.approx(2.7183, abs=5e-5)
    assert rows["rlfn_ntire"]["status"] == "reference" and rows["rlfn_ntire"]["total"] == pytest.approx(7.3891, 1e-4)
    # the default (auto): an H100 is not the RTX 3090 of the published constants, rlfn_ntire is measured: the
    # measured baseline, said in one warning line
    auto = run(str(folder), "--protocol", "ntire2024", "--format", "json")
    assert auto.exit_code == 0, auto.output
    assert json.loads(auto.stdout)["rows"] == json.loads(result.stdout)["rows"]
    warnings = [line for line in auto.stderr.splitlines() if line.startswith("warning: BASELINE MEASURED")]
    assert len(warnings) == 1 and "not on the RTX 3090 that ntire2024's constants were published on" in warnings[0]
    # the published constants when asked: the note says these scores do not compare
    result = run(str(folder), "--protocol", "ntire2024", "--baseline", "published")
    assert result.exit_code == 0 and "against a baseline published on RTX 3090: these scores do not compare" in \
        " ".join(result.output.split())


def test_plot_and_output_file(tmp_path):
    png, out = tmp_path / "pareto.png", tmp_path / "board.md"
    result = run("--published", "ntire2022", "--format", "md", "--plot", str(png), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # by hand from the table (fastest first, each with a higher val PSNR than every faster ranked team):
    # ByteESR 27.11 ms 29.00 dB, NEESR 29.97 29.01, xilinxSR 48.20 29.05, Giantpandacv 87.87 29.07,
    # TeamInception 171.56 29.12 (Just Try: 29.12 dB too, but slower); VAP (23.96 ms) fails the gate
    assert "Pareto front: ByteESR, NEESR, xilinxSR, Giantpandacv, TeamInception)" in result.output
    assert "27.11 (1)" in out.read_text(encoding="utf-8")    # runtime track: ByteESR won the 2022 main track


def test_protocol_file_and_gate(tmp_path):
    proto = tmp_path / "mine.toml"
    proto.write_text('name = "mine"\n[tracks.fast]\nmetrics = ["runtime_ms"]\n', encoding="utf-8")
    result = run("--published", "ntire2022", "--protocol-file", str(proto), "--format", "csv")
    assert result.exit_code == 0, result.output
    # no gate in this protocol: VAP (23.96 ms, below the 2022 gate) is ranked first, then ByteESR, NJU_Jet
    assert [r["entry"] for r in csv.DictReader(io.StringIO(result.output))][:3] == ["VAP", "ByteESR", "NJU_Jet"]
    result = run("--published", "ntire2022", "--gate", "rules")
    assert result.exit_code == 0 and "psnr_val ≥ 29.00 dB" in result.output


def test_result_file_that_is_not_json(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    one_error_line(run(str(bad)), "broken.json", "not a JSON file")


def test_csv_with_a_missing_column(tmp_path):
    bad = tmp_path / "table.csv"
    bad.write_text("entry,psnr_val,psnr_test,runtime_ms,params_m,flops_g,mem_mb\nx,29,28.7,1,1,1,1\n",
                   encoding="utf-8")
    one_error_line(run(str(bad)), "table.csv", "missing column 'acts_m'")


def test_protocol_file_with_an_unknown_metric(tmp_path):
    bad = tmp_path / "mine.toml"
    bad.write_text('name = "mine"\n[tracks.overall]\nmetrics = ["runtime_ms", "latency_ms"]\n', encoding="utf-8")
    one_error_line(run("--published", "ntire2022", "--protocol-file", str(bad)), "mine.toml",
                   "unknown metric 'latency_ms'")


@pytest.mark.parametrize("args, fragment", [
    (["--published", "ntire2022", "--protocol", "ntire1999"], "unknown protocol 'ntire1999'"),
    (["--published", "ntire2022", "--track", "speed"], "no track 'speed'"),
    (["--published", "ntire2022", "--gate", "loose"], "no gate 'loose'"),
    (["--published", "ntire1999"], "no published table 'ntire1999'"),
    (["no/such/file.json"], "no such file"),
    (["--published", "ntire2022", "--protocol", "ntire2024", "--baseline", "measured", "--baseline-entry", "zz"],
     "baseline entry 'zz' is not among the results"),
])
def test_other_bad_inputs(args, fragment):
    one_error_line(run(*args), fragment)


def test_mixed_devices_refused(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    for name, gpu in [("a", "NVIDIA H100 80GB HBM3"), ("b", "NVIDIA RTX A6000")]:
        rec = {"entry": name, "status": "ok", "device": {**GPU, "gpu": gpu}, "runtime_ms": {"mean": 5.0}}
        (folder / f"{name}.json").write_text(json.dumps(rec), encoding="utf-8")
    one_error_line(run(str(folder)), "runtime_ms measured on 2 devices that do not compare",
                   "--baseline measured")


def test_nothing_to_rank():
    result = run()
    assert result.exit_code == 2 and "nothing to rank" in result.output


def test_random_weights_apart_unless_allowed_and_the_ungated_warning(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for entry, ms, weights in [("rlfn", 20.0, "pretrained"), ("ecbsr", 5.0, "random")]:
        rec = {"entry": entry, "track": "runtime", "status": "ok", "device": GPU, "weights": weights,
               "runtime_ms": {"mean": ms, "median": ms}}
        (folder / f"{entry}__runtime.json").write_text(json.dumps(rec), encoding="utf-8")
    result = run(str(folder), "--track", "runtime", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows["rlfn"]["rank"], rows["ecbsr"]["rank"], rows["ecbsr"]["status"]) == ("1", "", "random weights")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "GATE NOT APPLIED" in warnings[0] and "'valid'" in warnings[0]
    allowed = run(str(folder), "--track", "runtime", "--format", "csv", "--allow-random")
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO(allowed.stdout))}
    assert (rows["ecbsr"]["rank"], rows["rlfn"]["rank"], rows["ecbsr"]["weights"]) == ("1", "2", "random")
    quiet = run(str(folder), "--track", "runtime", "--gate", "none")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_refused_values_one_warning_line_each(tmp_path):
    rec = {"entry": "bad", "track": "runtime", "status": "ok", "device": GPU, "params": -1,
           "runtime_ms": {"mean": float("nan"), "median": float("nan")}}
    good = {**rec, "entry": "good", "params": 100, "runtime_ms": {"mean": 1.0, "median": 1.0}}
    for r in (rec, good):
        (tmp_path / f"{r['entry']}.json").write_text(json.dumps(r), encoding="utf-8")     # NaN as JSON writes it
    result = run(str(tmp_path), "--track", "runtime", "--gate", "none")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: bad: runtime_ms nan refused: not a positive finite number",
                        "warning: bad: params_m -1 refused: not a positive finite number"]


def test_help_states_the_split_naming_rule_and_allow_random():
    text = " ".join(run("--help").output.split())
    assert "contains 'valid'/'val'/'validation' or 'test'" in text and "--allow-random" in text


CPU = {"device": "cpu", "kind": "cpu", "cpu": "Intel Xeon", "threads": 2, "torch": "2.13.0", "precision": "fp32"}


def cpu_results(folder):
    """The tour's quick CPU run as eval writes it (seconds per call on 2 cores, options of the quick run)."""
    folder.mkdir()
    for entry, ms, params, macs in [("rlfn_ntire", 1850.0, 317218, 19.6749e9), ("efdn", 1900.0, 276192, 16.70e9),
                                    ("span", 1020.0, 150688, 9.83e9), ("imdn_baseline", 6100.0, 893936, 58.53e9)]:
        rec = {"entry": entry, "track": "overall", "status": "ok", "device": CPU, "params": params,
               "macs_ntire2022": macs, "macs_fvcore": macs, "activations": 80e6, "max_memory_mib": 300.0,
               "runtime_ms": {"timer": "robust", "median": ms, "mean": ms, "iqr": 0.3 * ms, "cv": 0.44, "n": 6},
               "options": {"extra": {"images": 2, "crop": 128}}, "weights": "pretrained"}
        (folder / f"{entry}__overall.json").write_text(json.dumps(rec), encoding="utf-8")
    return folder


@pytest.mark.parametrize("protocol", ["ntire2022", "ntire2024", "ntire2025", "ntire2026"])
def test_every_protocol_on_cpu_records_without_a_traceback(tmp_path, protocol):
    """The issue's command: ntire2024 on CPU records raised OverflowError (exp(2 x 6100 / 13.54))."""
    folder = cpu_results(tmp_path / "results")
    result = run(str(folder), "--protocol", protocol, "--track", "overall", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert all(r["status"] != "ranked" for r in data["rows"])               # quick-run runtimes do not rank
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any(w.startswith("warning: RUNTIMES CANNOT RANK: 4 of 4 row(s) (quick run") for w in warnings)
    if protocol != "ntire2022":
        assert any(w.startswith("warning: BASELINE MEASURED: runtime_ms measured on Intel Xeon, 2 threads")
                   for w in warnings)


def test_published_constants_on_cpu_records_refuse_the_overflowing_score(tmp_path):
    folder = cpu_results(tmp_path / "results")
    result = run(str(folder), "--protocol", "ntire2024", "--baseline", "published", "--format", "csv",
                 "--allow-unsteady", "--gate", "none")
    assert result.exit_code == 0 and "Traceback" not in result.output
    rows = {r["entry"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    # 6100 / 13.54 = 450.5: exp(901) overflows; 1020 / 13.54 = 75.3: exp(150.7) does not
    assert rows["imdn_baseline"]["status"] == "not ranked" and rows["imdn_baseline"]["score"] == ""
    assert rows["imdn_baseline"]["note"].startswith("score overflows: runtime_ms 451x the baseline's published on RTX")
    assert rows["span"]["rank"] == "1" and float(rows["span"]["score"]) > 1e60
    refused = [line for line in result.stderr.splitlines() if "SCORE REFUSED" in line]
    assert refused == ["warning: SCORE REFUSED for 1 row(s) (imdn_baseline): exp(2 x value / baseline) overflows; "
                       "see each row's reason"]


def test_help_names_the_runtime_rule_and_allow_unsteady():
    text = " ".join(run("--help").output.split())
    assert "--allow-unsteady" in text and "above 0.25 cannot rank" in text and "auto" in text


def test_a_teams_text_reaches_no_renderer_raw() -> None:
    """An error line a team's code wrote (escape sequences, HTML, a javascript: link, Markdown) is shown as text in
    every format: no terminal sequence, no tag, no link."""
    from ntirekit.rank import build_leaderboard
    from ntirekit.rank.render import render as render_leaderboard

    hostile = "\x1b]0;owned\x07<img src=x onerror=alert(1)> [click](javascript:alert(1)) *big* a|b \x1b[2J"
    records = [{"entry": "team01_evil", "track": "overall", "status": "failed", "error": hostile},
               {"entry": "rlfn_ntire", "track": "overall", "status": "ok", "params": 317218,
                "macs_ntire2022": 19.7e9, "activations": 80e6, "max_memory_mib": 300.0,
                "runtime_ms": {"median": 20.0, "mean": 20.0, "timer": "robust", "iqr": 0.1}}]
    board = build_leaderboard(records, "ntire2022", "overall", gate="none")
    md = render_leaderboard(board, "md")
    assert "<img" not in md and "[click](" not in md and "\x1b" not in md and "\x07" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "\\[click\\](javascript" in md
    table = render_leaderboard(board, "table")
    assert "\x1b" not in table and "\x07" not in table and "owned" not in table
    assert "onerror=alert(1)" in table and "javascript:alert(1)" in table    # the text is shown, only cleaned
