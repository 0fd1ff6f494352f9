"""`axp results`: errors counted apart from pass rates; model sources never pooled."""

from __future__ import annotations

import json

import pytest

from pytest_axp.query import results
from pytest_axp.record.index import finalize_run
from pytest_axp.record.layout import RunPaths

ULIDS = [f"01JABCDEFGHJKMNPQRSTVWXY{i:02d}" for i in range(12)]


def test_rate_counts_leave_errors_and_unfinished_out_of_n():
    statuses = ["pass", "pass", "fail", "timeout", "error", "error", "partial"]
    assert results.rate_counts(statuses) == (2, 4, 2)
    assert results.rate_counts(["error", "error"]) == (0, 0, 2)
    assert results.rate_counts([]) == (0, 0, 0)


def test_group_key_separates_model_sources():
    row = {"experiment_id": "e", "variant_id": "v"}
    assert results.group_key({**row, "model_source": "scripted"}) != \
        results.group_key({**row, "model_source": "live"})
    assert results.group_key({**row, "model_source": None})[2] == "unknown"


def _run(root, ulid: str, vid: str, status: str, source: str, repeat: int = 1) -> None:
    run = RunPaths(root / f"exp-{ulid}")
    run.resolved_variant(vid).parent.mkdir(parents=True, exist_ok=True)
    run.resolved_variant(vid).write_text("id: exp\n")
    run.results(vid).root.mkdir(parents=True, exist_ok=True)
    run.results(vid).run_summary.write_text(json.dumps({
        "schema_version": 1, "run_id": run.run_id, "variant_id": vid, "variant_tag": vid,
        "experiment_id": "exp", "status": status, "repeat": repeat,
        "agent": {"name": "claude", "model_source": source, "cost_usd": 0.0},
        "started_at_epoch": 1, "ended_at_epoch": 2, "duration_seconds": 1, "tests": []}))
    finalize_run(run)


def test_results_show_errors_apart_and_split_by_model_source(tmp_path):
    runs = tmp_path / ".axp" / "runs"
    plan = [("pass", "scripted"), ("pass", "scripted"), ("fail", "scripted"),
            ("error", "scripted"), ("timeout", "scripted"),
            ("pass", "live"), ("error", "live"), ("error", "live")]
    for ulid, (status, source) in zip(ULIDS, plan, strict=False):
        _run(runs, ulid, "default", status, source)
    got = results.load(runs, ["all"])
    by_source = {v.model_source: v for v in got.variants}
    assert set(by_source) == {"scripted", "live"}
    s, live = by_source["scripted"], by_source["live"]
    # Pass rate = pass / (pass + fail + timeout): the error is shown, not in the rate.
    assert (s.passed, s.n, s.errors, s.pass_rate) == (2, 4, 1, 0.5)
    assert s.statuses == {"pass": 2, "fail": 1, "error": 1, "timeout": 1}
    assert (live.passed, live.n, live.errors, live.pass_rate) == (1, 1, 2, 1.0)
    # Wilson over the measured runs only: 2 of 4.
    assert (s.ci_low, s.ci_high) == pytest.approx(results.stats.wilson_interval(2, 4))
    assert got.comparison is None, "a scripted model is not compared with a live one"
    text = results.render_text(got)
    assert "default [scripted]" in text and "default [live]" in text
    head, rows = results.summary_rows(got)
    errors_col = head.index("errors")
    assert sorted(r[errors_col] for r in rows) == ["1", "2"]
    csv_text = results.render_csv(got)
    assert csv_text.splitlines()[0].endswith("verdict,errors,model_source")


def test_all_errors_give_no_rate(tmp_path):
    runs = tmp_path / ".axp" / "runs"
    for ulid in ULIDS[:3]:
        _run(runs, ulid, "default", "error", "none")
    (v,) = results.load(runs, ["all"]).variants
    assert (v.n, v.errors, v.pass_rate, v.verdict) == (0, 3, None, results.TOO_FEW)
    assert v.key == "exp/default"
