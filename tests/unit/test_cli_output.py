"""What the `axp` CLI prints, as pure logic: the final table, reasons, fitting, help."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from axp_cli import final
from axp_cli.main import build_parser
from axp_cli.query_cmds import _results_priority
from pytest_axp.collect import experiment_files
from pytest_axp.experiment import experiment_json_schema
from pytest_axp.render.table import fit, fitted, render

LONG = ("secret(s) GITHUB_TOKEN, API_KEY, SOME_OTHER_TOKEN have no value: set them in the "
        "environment, ./.env, an --env-file or with --env before running the experiment")


def _summary(status: str, **extra) -> dict:
    base = {"status": status, "duration_ms": 1500, "tests": [], "error": None,
            "agent": {"turns": 2, "cost_usd": 0.0125, "input_tokens": 10,
                      "cache_read_input_tokens": 5, "output_tokens": 7, "exit_code": 0}}
    base.update(extra)
    return base


def test_reason_is_whole_and_says_what_failed():
    assert final.reason(_summary("pass")) == ""
    error = {"phase": "secrets", "name": "GITHUB_TOKEN, API_KEY", "message": LONG + "\nmore",
             "exit_code": None, "infrastructure": False}
    assert final.reason(_summary("error", error=error)) == (
        f"secrets 'GITHUB_TOKEN, API_KEY' failed: {LONG} more")
    infra = dict(error, phase="sandbox", name="create", infrastructure=True, exit_code=125)
    assert final.reason(_summary("error", error=infra)).startswith(
        "infrastructure: sandbox 'create' failed (exit 125): ")
    tests = [{"kind": "application", "name": "a", "status": "fail", "exit_code": 1},
             {"kind": "application", "name": "b", "status": "pass", "exit_code": 0},
             {"kind": "introspection", "name": "c", "status": "fail", "exit_code": 2}]
    s = _summary("fail", tests=tests)
    s["agent"]["stopped_reason"] = "max_turns reached: 3"
    assert final.reason(s) == ("agent stopped: max_turns reached: 3; failed tests: "
                               "application/a (exit 1), introspection/c (exit 2)")
    assert final.reason(_summary("timeout")) == "the agent ran out of time"
    hung = [{"kind": "application", "name": "h", "status": "fail", "exit_code": None,
             "reason": "timed out after 5 s"}]
    assert final.reason(_summary("fail", tests=hung)) == (
        "failed test: application/h (timed out after 5 s)")
    # The model API's failure and the agent's stop say the same thing: said once.
    api = {"phase": "model_api", "name": "claude", "message": "model API unreachable: no key",
           "exit_code": None, "infrastructure": True}
    s = _summary("error", error=api)
    s["agent"]["stopped_reason"] = "model API unreachable: no key"
    assert final.reason(s) == (
        "infrastructure: model_api 'claude' failed: model API unreachable: no key")
    assert final.reason(None) == "no run-summary.json: the variant did not finish"


def test_final_table_wraps_the_reason_and_never_cuts_it():
    error = {"phase": "secrets", "name": "X", "message": LONG}
    rows = [final.Row("good", 1, _summary("pass")),
            final.Row("bad", 1, _summary("error", error=error))]
    text = final.table(rows, repeats=1, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[0].split() == ["variant", "status", "duration", "turns", "tokens", "in/out",
                                "cost", "reason"]
    assert lines[2].split() == ["good", "pass", "1.5s", "2", "15/7", "$0.0125"]
    assert lines[3].startswith("bad") and len(lines) > 4
    reason_col = lines[0].index("reason")
    assert " ".join(line[reason_col:].strip() for line in lines[3:]) == final.reason(
        rows[1].summary)
    # Without a width (a pipe, CI) the row stays one line.
    assert len(final.table(rows, repeats=1, width=None).splitlines()) == 4


def test_total_line_counts_statuses_and_sums_cost():
    rows = [final.Row("a", 1, _summary("pass")), final.Row("b", 1, _summary("fail")),
            final.Row("a", 2, _summary("pass")), final.Row("b", 2, None)]
    assert final.total_line(rows, 12.34) == (
        "total: 4 variant runs: 2 pass, 1 fail, 1 no result; cost $0.0375; wall time 12.3s")
    text = final.table(rows, repeats=2, width=None)
    assert text.splitlines()[0].split()[:3] == ["variant", "repeat", "status"]


def test_final_table_says_where_each_variant_ran_when_a_pool_spread_them():
    one = [final.Row(v, 1, _summary("pass", engine="unix:///var/run/docker.sock"))
           for v in "ab"]
    assert "engine" not in final.table(one, repeats=1, width=None)  # one engine: nothing new
    two = [one[0], final.Row("b", 1, _summary("pass", engine="ssh://ci@build-2"))]
    lines = final.table(two, repeats=1, width=None).splitlines()
    assert lines[0].split()[:3] == ["variant", "status", "engine"]
    assert lines[2].split()[:3] == ["a", "pass", "unix:///var/run/docker.sock"]
    assert lines[3].split()[:3] == ["b", "pass", "ssh://ci@build-2"]


def test_fit_drops_columns_by_priority_and_names_them():
    head = ["variant", "N", "passed", "pass rate", "95% CI", "duration s (med / mean)",
            "cost $ (med / mean)", "tool calls (med / mean)", "verdict"]
    rows = [["a-long-variant-name", "5", "5", "100%", "57%-100%", "10.0 / 10.0",
             "0.0100 / 0.0100", "3 / 3", "too few runs to tell"]]
    kept, _, dropped = fit(head, rows, 70, _results_priority)
    assert kept[:4] == ["variant", "N", "passed", "pass rate"] and "verdict" in kept
    assert dropped[0] == "duration s (med / mean)" or "tool calls (med / mean)" in dropped
    text = fitted(head, rows, 70, _results_priority)
    assert all(len(line) <= 70 for line in text.splitlines()), text
    assert "left out to fit 70 columns" in text
    assert render(head, rows) == fitted(head, rows, None, _results_priority)


def _actions(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_of_every_subcommand_has_help():
    found = list(_actions(build_parser(), "axp"))
    assert len(found) > 40
    missing = [f"{path} {a.option_strings or a.dest}" for path, a in found
               if not (a.help or "").strip()]
    assert not missing


def test_every_schema_field_has_a_description():
    schema = experiment_json_schema()
    missing = [f"{model}.{field}" for model, d in schema["$defs"].items()
               for field, prop in d.get("properties", {}).items()
               if not prop.get("description", "").strip()]
    assert not missing
    assert len([1 for d in schema["$defs"].values() for _ in d.get("properties", {})]) > 100


def test_experiment_files_of_a_folder_as_pytest_collects_them(tmp_path: Path):
    exp = "schema_version: 2\nid: x\nagents: [claude]\n"
    for rel in ("a.yaml", "sub/b.yml", ".hidden/c.yaml", "node_modules/d.yaml", ".e.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(exp)
    (tmp_path / "other.yaml").write_text("key: value\n")
    (tmp_path / "notes.txt").write_text(exp)
    assert [p.relative_to(tmp_path).as_posix() for p in experiment_files(tmp_path)] == [
        "a.yaml", "sub/b.yml"]


def test_progress_names_the_phase_under_way(tmp_path):
    from pytest_axp.record.commands import phase_under_way

    log = tmp_path / "commands.jsonl"
    assert phase_under_way(log) is None
    steps = [({"phase": "setup", "name": "env/0"}, "setup"),
             ({"phase": "snapshot", "name": "before_agent"}, "agent"),
             ({"phase": "agent", "name": "command"}, "agent"),
             ({"phase": "snapshot", "name": "after_agent"}, "tests"),
             ({"phase": "snapshot", "name": "fetch-changed"}, "tests"),
             ({"phase": "test", "name": "application/a"}, "tests"),
             ({"phase": "snapshot", "name": "after_tests"}, "finishing")]
    for record, expected in steps:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        assert phase_under_way(log) == expected, record
