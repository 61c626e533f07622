"""The commands' plain-text tables: no column that no row fills (eval's SSIM without --ssim, regress's notes), every
column named."""

from __future__ import annotations

from ntirekit.cli.eval_cmd import summary_table
from ntirekit.cli.regress_cmd import findings_table
from ntirekit.cli.tables import filled_columns, table
from ntirekit.eval.regress import Finding


def header(text: str) -> list[str]:
    return text.splitlines()[0].split()


def test_table_leaves_out_columns_no_row_fills():
    rows = [["a", "", "1", None], ["b", " ", "2", ""]]
    assert filled_columns(["x", "empty", "n", "none"], rows) == [0, 2]
    assert filled_columns(["x", "empty", "n", "none"], rows, keep=("none",)) == [0, 2, 3]
    assert header(table(["x", "empty", "n", "none"], rows)) == ["x", "n"]


def test_eval_psnr_table_has_no_ssim_column_unless_measured():
    base = {"entry": "imdn", "weights": "pretrained", "status": "ok", "psnr_db": 30.301}
    assert header(summary_table([{**base, "ssim": None}], "psnr")) == ["entry", "weights", "PSNR", "[dB]", "status"]
    with_ssim = summary_table([{**base, "ssim": 0.8512}], "psnr")
    assert header(with_ssim) == ["entry", "weights", "PSNR", "[dB]", "SSIM", "status"] and "0.8512" in with_ssim
    failed = summary_table([{"entry": "x", "status": "failed", "error": "DataError: bad"}], "psnr")
    assert header(failed) == ["entry", "status"] and "FAILED: DataError: bad" in failed


def test_eval_timing_table_names_memory_in_mib():
    rec = {"entry": "span", "weights": "pretrained", "status": "ok", "max_memory_mib": 20.2,
           "runtime_ms": {"median": 86.87, "mean": 90.0, "cv": 0.1, "timer": "robust"}}
    text = summary_table([rec], "runtime")
    assert "Memory [MiB]" in text and "Mem [MiB]" not in text and "20.20" in text


def test_regress_table_names_every_column_and_drops_empty_notes():
    findings = [Finding("span", "complexity", "params", 150688, 150688, True),
                Finding("span", "psnr", "psnr_db", 29.85, 29.80, False)]
    text = findings_table(findings)
    assert header(text) == ["entry", "track", "metric", "recorded", "now", "verdict"]
    assert "REGRESSION" in text.splitlines()[-1]
    noted = findings_table([*findings, Finding("rlfn", "runtime", "runtime_ratio", 1.0, 1.3, False, "vs rlfn_ntire")])
    assert header(noted)[-1] == "note" and noted.splitlines()[-1].endswith("vs rlfn_ntire")
