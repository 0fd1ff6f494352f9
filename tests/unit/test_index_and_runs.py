import json
import os

import pytest

from pytest_axp.record.index import (
    build_index,
    finalize_run,
    index_matches,
    rebuild_index,
)
from pytest_axp.record.layout import RunPaths
from pytest_axp.runs import list_runs, split_run_id

ULID_A = "01JABCDEFGHJKMNPQRSTVWXYZ0"
ULID_B = "01JBBCDEFGHJKMNPQRSTVWXYZ0"


def _make_run(root, run_id, statuses, finished=True):
    run = RunPaths(root / run_id)
    for vid, status in statuses.items():
        run.resolved_variant(vid).parent.mkdir(parents=True, exist_ok=True)
        run.resolved_variant(vid).write_text("id: x\n")
        if finished:
            run.results(vid).root.mkdir(parents=True, exist_ok=True)
            run.results(vid).run_summary.write_text(json.dumps({
                "experiment_id": "exp", "variant_tag": vid.upper(), "status": status,
                "agent": {"cost_usd": 0.5}, "duration_seconds": 3}))
    return run


def test_index_waits_for_every_selected_variant(tmp_path):
    run = _make_run(tmp_path, f"exp-{ULID_A}", {"a": "pass"})
    _make_run(tmp_path, f"exp-{ULID_A}", {"b": "fail"}, finished=False)
    assert build_index(run) is None
    assert not finalize_run(run) and not run.index.exists()


def test_index_schema(tmp_path):
    run = _make_run(tmp_path, f"exp-{ULID_A}", {"a": "pass", "b": "fail"})
    assert finalize_run(run)
    idx = json.loads(run.index.read_text())
    assert idx == {
        "schema_version": 1, "run_id": f"exp-{ULID_A}", "experiment_id": "exp",
        "variants": {
            v: {"variant_tag": v.upper(), "status": s, "cost_usd": 0.5, "duration_seconds": 3,
                "paths": {"results_dir": f"results/{v}",
                          "run_summary": f"results/{v}/run-summary.json"}}
            for v, s in (("a", "pass"), ("b", "fail"))}}
    assert not finalize_run(run), "index.json is written once"


def test_list_runs_newest_first_with_partial(tmp_path):
    done = _make_run(tmp_path, f"exp-{ULID_A}", {"a": "pass", "b": "timeout"})
    finalize_run(done)
    _make_run(tmp_path, f"exp-{ULID_B}", {"a": "pass"}, finished=False)
    odd = tmp_path / "not-a-ulid-run"
    odd.mkdir()
    os.utime(odd, (0, 0))
    rows = list_runs(tmp_path)
    assert [r.run_id for r in rows] == [f"exp-{ULID_B}", f"exp-{ULID_A}", "not-a-ulid-run"]
    assert [r.status for r in rows] == ["partial", "timeout", "partial"]
    assert [r.run_id for r in list_runs(tmp_path, status="timeout")] == [f"exp-{ULID_A}"]
    assert rows[1].to_json()["variants"] == {"a": "pass", "b": "timeout"}


def test_split_run_id():
    assert split_run_id(f"my-exp-{ULID_A}") == ("my-exp", ULID_A)
    assert split_run_id("plain") == ("plain", None)


def _finished(tmp_path):
    run = _make_run(tmp_path, f"exp-{ULID_A}", {"a": "pass", "b": "fail"})
    assert finalize_run(run)
    return run


def test_index_matches_the_summaries(tmp_path):
    assert index_matches(_finished(tmp_path))


def _corrupt(run, how):
    if how == "not json":
        run.index.write_text("{not json")
    elif how == "truncated":
        run.index.write_bytes(run.index.read_bytes()[:40])
    elif how == "status differs":
        idx = json.loads(run.index.read_text())
        idx["variants"]["b"]["status"] = "pass"
        run.index.write_text(json.dumps(idx))
    elif how == "variant missing":
        idx = json.loads(run.index.read_text())
        del idx["variants"]["b"]
        run.index.write_text(json.dumps(idx))
    elif how == "variant extra":
        idx = json.loads(run.index.read_text())
        idx["variants"]["ghost"] = {"status": "pass"}
        run.index.write_text(json.dumps(idx))
    elif how == "not an object":
        run.index.write_text("[]")


@pytest.mark.parametrize("how", ["not json", "truncated", "status differs", "variant missing",
                                 "variant extra", "not an object"])
def test_a_stale_index_is_found_and_rebuilt(tmp_path, how):
    run = _finished(tmp_path)
    good = json.loads(run.index.read_text())
    _corrupt(run, how)
    assert not index_matches(run)
    assert rebuild_index(run)
    assert json.loads(run.index.read_text()) == good
    assert list_runs(tmp_path)[0].status == "fail"


def test_rebuild_removes_an_index_while_a_variant_has_no_summary(tmp_path):
    run = _finished(tmp_path)
    run.results("b").run_summary.unlink()
    assert not index_matches(run)
    assert not rebuild_index(run) and not run.index.exists()
    assert list_runs(tmp_path)[0].status == "partial"


def test_runs_dir_resolution_order(tmp_path):
    from pytest_axp.runs import resolve_runs_dir

    # the option wins, then $AXP_RUNS_DIR, then ./.axp/runs; relative paths from cwd
    assert resolve_runs_dir("out", tmp_path, {"AXP_RUNS_DIR": "/elsewhere"}) == tmp_path / "out"
    assert resolve_runs_dir(None, tmp_path, {"AXP_RUNS_DIR": "env-runs"}) == tmp_path / "env-runs"
    assert resolve_runs_dir(None, tmp_path, {"AXP_RUNS_DIR": str(tmp_path / "abs")}) \
        == tmp_path / "abs"
    assert resolve_runs_dir(None, tmp_path, {}) == tmp_path / ".axp" / "runs"
    assert resolve_runs_dir("", tmp_path, {}) == tmp_path / ".axp" / "runs"


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    import pytest as _pytest

    from pytest_axp.record.jsonio import atomic_file, write_atomic

    target = tmp_path / "sub" / "out.bin"
    write_atomic(target, "first")
    with _pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b"half of a second")
        raise RuntimeError("cut short")
    assert target.read_text() == "first"  # the failed writer left the old file whole
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]  # and no temp file
    write_atomic(target, b"second", mode=0o644)
    assert target.read_bytes() == b"second" and target.stat().st_mode & 0o777 == 0o644
    write_atomic(target, "third")
    assert target.stat().st_mode & 0o777 == 0o600
