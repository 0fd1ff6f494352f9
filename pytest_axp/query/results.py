"""`axp results`: per-variant outcomes across runs and repeats, with honest uncertainty."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import stats

FINAL = ("pass", "fail", "timeout", "error")
# What a pass rate is a share of: the runs that measured the agent. An `error` (the model
# API, the sandbox or the experiment's own setup failed; or the agent crashed with nothing
# to test) measured nothing: it is counted and shown, never pooled into a rate.
MEASURED = ("pass", "fail", "timeout")
TOO_FEW = "too few runs to tell"
MIN_N = 5            # fewer variant runs than this: no verdict
MAX_CI_WIDTH = 0.5   # a 95% interval wider than this: no verdict either
ALPHA = 0.05
METRICS = ("duration_seconds", "cost_usd", "input_tokens", "output_tokens", "turns", "tool_calls")

DEFINITIONS = (
    "N: measured variant runs (pass, fail, timeout) across the selected runs and repeats; "
    "errors (the model API, the sandbox or setup failed, or the agent crashed with no tests "
    "to run) and unfinished runs are counted apart, never in N. "
    "Pass rate: pass / N, with a Wilson 95% interval. "
    "Runs answered by a scripted model and by a live one are separate rows, never pooled. "
    "pass^k: share of run sets in which all k repeats of the variant passed, where a run set "
    "is the runs of one `--repeat` invocation (repeat 1..k) and k is the most common number "
    "of repeats per set; only complete sets count. "
    "Per-test rates count only the variant runs in which the test ran (tests do not run after "
    "a timeout or error). "
    f"Verdicts need N >= {MIN_N} and an interval no wider than {MAX_CI_WIDTH}; otherwise: "
    f"\"{TOO_FEW}\". With exactly two variants, their pass rates are compared with a "
    f"two-sided Fisher exact test at {ALPHA}."
)


@dataclass
class Metric:
    median: float | None
    mean: float | None
    n: int


@dataclass
class TestRate:
    __test__ = False  # not a pytest test class

    kind: str
    name: str
    n: int
    passed: int
    pass_rate: float | None
    ci_low: float
    ci_high: float


@dataclass
class VariantResult:
    experiment_id: str
    variant_id: str
    variant_tag: str
    n: int
    passed: int
    errors: int
    statuses: dict[str, int]
    unfinished: int
    pass_rate: float | None
    ci_low: float
    ci_high: float
    k: int | None
    run_sets: int
    pass_k: float | None
    verdict: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    tests: list[TestRate] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    model_source: str = "none"

    @property
    def key(self) -> str:
        # Runs that asked no model need no qualifier; a model's source always gets one.
        base = f"{self.experiment_id}/{self.variant_id}"
        return base if self.model_source == "none" else f"{base} [{self.model_source}]"


@dataclass
class Comparison:
    a: str
    b: str
    table: list[list[int]]
    p_value: float
    verdict: str


@dataclass
class Results:
    run_ids: list[str]
    variants: list[VariantResult]
    comparison: Comparison | None
    definitions: str = DEFINITIONS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rate_counts(statuses: list[str]) -> tuple[int, int, int]:
    """(passed, N, errors) of some variant runs' statuses: N counts the measured runs only
    (MEASURED); unfinished runs count nowhere."""
    passed = sum(1 for s in statuses if s == "pass")
    n = sum(1 for s in statuses if s in MEASURED)
    errors = sum(1 for s in statuses if s == "error")
    return passed, n, errors


def group_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """Rows with the same key are pooled: one experiment, one variant, one model source."""
    return row["experiment_id"], row["variant_id"], row.get("model_source") or "unknown"


def _verdict(n: int, low: float, high: float, rate: float | None) -> str:
    if n < MIN_N or high - low > MAX_CI_WIDTH or rate is None:
        return TOO_FEW
    return f"pass rate {rate:.0%} (95% CI {low:.0%} to {high:.0%})"


def _run_sets(rows: list[dict[str, Any]]) -> list[list[bool]]:
    """Group a variant's runs into `--repeat` invocations: in creation order, a set starts
    at each run whose repeat number does not follow the previous run's."""
    groups: list[list[bool]] = []
    last = None
    # Repeat number as the tie-break: the run ids of one invocation share a millisecond.
    for r in sorted(rows, key=lambda r: (r["created"] or 0, r["repeat"] or 0, r["run_id"])):
        rep = r["repeat"]
        if not groups or rep is None or last is None or rep != last + 1:
            groups.append([])
        groups[-1].append(r["status"] == "pass")
        last = rep
    return groups


def _mode_size(groups: list[list[bool]]) -> int | None:
    if not groups:
        return None
    counts = Counter(len(g) for g in groups)
    # Most common size; on a tie the larger, since shorter sets are usually cut short.
    return max(counts, key=lambda size: (counts[size], size))


def aggregate(con: Any, run_ids: list[str], experiment: str | None = None) -> Results:
    """Results of the variants of the runs in `con` (a connection from engine.connect)."""
    where, params = "", []
    if experiment:
        where, params = "WHERE r.experiment_id = ?", [experiment]
    cur = con.execute(f"""
        SELECT r.*, e.created,
               (SELECT count(*) FROM tool_calls t
                 WHERE t.run_id = r.run_id AND t.variant_id = r.variant_id) AS tool_calls
          FROM runs r JOIN experiment_runs e USING (run_id) {where}
         ORDER BY r.experiment_id, r.variant_id, e.created, r.run_id""", params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for r in rows:
        r["created"] = r["created"].timestamp() if r["created"] is not None else None
    cur = con.execute("SELECT run_id, variant_id, kind, name, status FROM tests "
                      "ORDER BY kind, name")
    tests_by_variant_run: dict[tuple[str, str], list[tuple[str, str, str]]] = defaultdict(list)
    for run_id, vid, kind, name, status in cur.fetchall():
        tests_by_variant_run[(run_id, vid)].append((kind, name, status))

    by_variant: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_variant[group_key(r)].append(r)

    variants: list[VariantResult] = []
    for (exp_id, vid, source), vrows in sorted(by_variant.items()):
        final = [r for r in vrows if r["status"] in FINAL]
        measured = [r for r in final if r["status"] in MEASURED]
        passed, n, errors = rate_counts([r["status"] for r in vrows])
        low, high = stats.wilson_interval(passed, n)
        rate = passed / n if n else None
        # A run set with an error in it is cut short: it does not count for pass^k.
        groups = _run_sets(measured)
        k = _mode_size(groups)
        pass_k = stats.pass_hat_k(groups, k) if k else None
        metrics = {}
        for m in METRICS:
            values = [r[m] for r in final if r[m] is not None]
            metrics[m] = Metric(stats.median(values), stats.mean(values), len(values))
        per_test: dict[tuple[str, str], list[bool]] = defaultdict(list)
        for r in final:
            for kind, name, status in tests_by_variant_run.get((r["run_id"], vid), []):
                per_test[(kind, name)].append(status == "pass")
        test_rates = []
        for (kind, name), outcomes in sorted(per_test.items()):
            tp = sum(outcomes)
            tl, th = stats.wilson_interval(tp, len(outcomes))
            test_rates.append(TestRate(kind, name, len(outcomes), tp, tp / len(outcomes), tl, th))
        variants.append(VariantResult(
            experiment_id=exp_id, variant_id=vid,
            variant_tag=next((r["variant_tag"] for r in vrows if r["variant_tag"]), vid),
            n=n, passed=passed, errors=errors, model_source=source,
            statuses=dict(Counter(r["status"] for r in final)),
            unfinished=len(vrows) - n, pass_rate=rate, ci_low=low, ci_high=high,
            k=k, run_sets=sum(1 for g in groups if len(g) == k) if k else 0, pass_k=pass_k,
            verdict=_verdict(n, low, high, rate), metrics=metrics, tests=test_rates,
            runs=[{"run_id": r["run_id"], "repeat": r["repeat"], "status": r["status"],
                   "duration_seconds": r["duration_seconds"], "cost_usd": r["cost_usd"]}
                  for r in vrows],
        ))
    return Results(run_ids=list(run_ids), variants=variants, comparison=_compare(variants))


def _compare(variants: list[VariantResult]) -> Comparison | None:
    if len(variants) != 2:
        return None
    a, b = variants
    if a.model_source != b.model_source:
        return None  # a scripted model against a live one says nothing of the variants
    table = [[a.passed, a.n - a.passed], [b.passed, b.n - b.passed]]
    p = stats.fisher_exact(table)
    if TOO_FEW in (a.verdict, b.verdict):
        verdict = TOO_FEW
    elif p < ALPHA:
        better = a if (a.pass_rate or 0) > (b.pass_rate or 0) else b
        verdict = (f"{better.key} passes more often; the difference is significant "
                   f"(Fisher exact p={p:.3g} < {ALPHA})")
    else:
        verdict = f"no significant difference in pass rate (Fisher exact p={p:.3g} >= {ALPHA})"
    return Comparison(a.key, b.key, table, p, verdict)


# -- output -------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _mm(m: Metric, digits: int = 1) -> str:
    return f"{_num(m.median, digits)} / {_num(m.mean, digits)}"


def _labels(results: Results) -> dict[str, str]:
    """Variant labels: the id and its model source, with the experiment if several are mixed."""
    several = len({v.experiment_id for v in results.variants}) > 1
    return {v.key: (v.key if several else v.key.split("/", 1)[1]) for v in results.variants}


def summary_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    labels = _labels(results)
    head = ["variant", "N", "passed", "pass rate", "95% CI", "errors", "pass^k",
            "duration s (med / mean)", "cost $ (med / mean)", "tokens in (med / mean)",
            "tokens out (med / mean)", "turns (med / mean)", "tool calls (med / mean)",
            "verdict"]
    rows = []
    for v in results.variants:
        pk = "-" if v.pass_k is None else f"{v.pass_k:.0%} (k={v.k}, {v.run_sets} set(s))"
        m = v.metrics
        rows.append([
            labels[v.key] + (f" (+{v.unfinished} unfinished)" if v.unfinished else ""),
            str(v.n), str(v.passed), _pct(v.pass_rate),
            f"{v.ci_low:.0%}-{v.ci_high:.0%}", str(v.errors), pk,
            _mm(m["duration_seconds"]), _mm(m["cost_usd"], 4), _mm(m["input_tokens"], 0),
            _mm(m["output_tokens"], 0), _mm(m["turns"]), _mm(m["tool_calls"]), v.verdict,
        ])
    return head, rows


def test_rows(results: Results) -> tuple[list[str], list[list[str]]]:
    labels = _labels(results)
    head = ["variant", "test", "N", "passed", "pass rate", "95% CI"]
    rows = [[labels[v.key], f"{t.kind}/{t.name}", str(t.n), str(t.passed), _pct(t.pass_rate),
             f"{t.ci_low:.0%}-{t.ci_high:.0%}"] for v in results.variants for t in v.tests]
    return head, rows


def comparison_line(results: Results) -> str | None:
    c = results.comparison
    if c is None:
        return None
    (ap, af), (bp, bf) = c.table
    return (f"{c.a} vs {c.b}: {ap}/{ap + af} vs {bp}/{bp + bf} passed; "
            f"Fisher exact two-sided p={c.p_value:.4g}; {c.verdict}")


def render_text(results: Results, table: Any = None) -> str:
    """`table(head, rows)` lays out a table as text (the CLI's fits the terminal)."""
    from pytest_axp.render.table import render

    table = table or render
    out = [f"{len(results.run_ids)} run(s), {len(results.variants)} variant(s)", ""]
    out.append(table(*summary_rows(results)))
    head, rows = test_rows(results)
    if rows:
        out += ["", "per test:", table(head, rows)]
    line = comparison_line(results)
    if line:
        out += ["", line]
    out += ["", textwrap.fill(results.definitions, 100)]
    return "\n".join(out)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(results: Results) -> str:
    out = [f"# Results: {len(results.run_ids)} run(s)", "", _md_table(*summary_rows(results))]
    head, rows = test_rows(results)
    if rows:
        out += ["", "## Per test", "", _md_table(head, rows)]
    line = comparison_line(results)
    if line:
        out += ["", "## Comparison", "", line]
    out += ["", "## Definitions", "", results.definitions]
    return "\n".join(out) + "\n"


def render_csv(results: Results) -> str:
    """One row per variant (scope=variant) and per variant and test (scope=test)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    metric_cols = [f"{m}_{s}" for m in METRICS for s in ("median", "mean")]
    w.writerow(["experiment_id", "variant_id", "scope", "test_kind", "test_name", "n", "passed",
                "pass_rate", "ci_low", "ci_high", "k", "run_sets", "pass_k", "unfinished",
                *metric_cols, "verdict", "errors", "model_source"])
    for v in results.variants:
        metrics = [getattr(v.metrics[m], s) for m in METRICS for s in ("median", "mean")]
        w.writerow([v.experiment_id, v.variant_id, "variant", "", "", v.n, v.passed,
                    v.pass_rate, v.ci_low, v.ci_high, v.k, v.run_sets, v.pass_k, v.unfinished,
                    *metrics, v.verdict, v.errors, v.model_source])
        for t in v.tests:
            w.writerow([v.experiment_id, v.variant_id, "test", t.kind, t.name, t.n, t.passed,
                        t.pass_rate, t.ci_low, t.ci_high, "", "", "", "",
                        *["" for _ in metric_cols], "", "", v.model_source])
    return buf.getvalue()


def render_json(results: Results) -> str:
    return json.dumps(results.to_json(), indent=2)


def load(runs_dir: Path, selectors: list[str], experiment: str | None = None) -> Results:
    """Derive (or reuse) the tables of the selected runs and aggregate them."""
    from .engine import connect, resolve_run_ids

    run_ids = resolve_run_ids(runs_dir, selectors)
    if experiment:
        from ..runs import read_run

        run_ids = [r for r in run_ids if read_run(runs_dir / r).experiment_id == experiment]
    con = connect(runs_dir, run_ids)
    try:
        return aggregate(con, run_ids, experiment)
    finally:
        con.close()
