"""What the viewer's pages show, read from the run folders as they are (no copy).

Lists and single variant runs are read from the files (cheap, and current while a run is
being written); statistics across variant runs come from the DuckDB tables
(`query.results`). Large files are read in pages from a byte offset, never whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..record.commands import phase_under_way
from ..record.jsonio import read_json
from ..record.layout import RunPaths
from ..record.summary import tail
from ..runlock import holder_alive
from ..runs import RunRow, read_run, run_status, split_run_id

FINAL = ("pass", "fail", "timeout", "error")
TRACE_PAGE_EVENTS = 200      # trace events per page of the trajectory
MAX_EVENT_BYTES = 2 << 20    # a trace line longer than this is listed, not parsed
MAX_FIELD_CHARS = 20_000     # a tool input/output or message shown inline, at most
MAX_PATCH_BYTES = 256 << 10  # a patch rendered inline, at most
MAX_BODY_BYTES = 256 << 10   # an API body shown inline, at most
FILE_PAGE_BYTES = 256 << 10  # a log or file served per request, at most


def _float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def short(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters)"


def digest(value: Any) -> str:
    """A short digest of a JSON value: the live pages' "has anything changed" token."""
    import hashlib

    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- run state ----------------------------------------------------------------------------

def is_live(runs_dir: Path, run_id: str) -> bool:
    """A process holds the run's lock (pytest_axp.runlock) and is alive: it is being written."""
    _, ulid = split_run_id(run_id)
    if not ulid:
        return False
    return holder_alive(runs_dir, ulid)


def why(summary: dict[str, Any]) -> str:
    """One line saying why a variant run did not pass ("" for a pass)."""
    status = summary.get("status")
    if status == "pass":
        return ""
    error = summary.get("error")
    if isinstance(error, dict):
        code = "" if error.get("exit_code") is None else f" (exit {error['exit_code']})"
        detail = last_line(str(error.get("stderr_tail") or ""))
        line = (f"{error.get('phase', 'error')} '{error.get('name', '')}' failed{code}: "
                f"{error.get('message', '')}")
        return f"{line}: {detail}" if detail else line
    agent = _dict(summary.get("agent"))
    if status == "timeout" or agent.get("timed_out"):
        return "the agent timed out; tests did not run"
    for t in summary.get("tests") or []:
        if isinstance(t, dict) and t.get("status") != "pass":
            detail = (t.get("reason") or last_line(str(t.get("stderr_tail") or ""))
                      or last_line(str(t.get("stdout_tail") or "")))
            code = "" if t.get("exit_code") is None else f" (exit {t['exit_code']})"
            head = f"test {t.get('kind', '')}/{t.get('name', '')} failed{code}"
            return f"{head}: {detail}" if detail else head
    if status == "error":
        return f"the agent exited with {agent.get('exit_code')} and no tests ran"
    return ""


@dataclass
class Cell:
    """One variant run: a cell of the run matrix."""

    run_id: str
    variant_id: str
    repeat: int | None
    status: str            # pass, fail, timeout, error, running, partial (no summary, not live)
    reason: str = ""
    phase: str = ""
    cost_usd: float | None = None
    duration_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cell_of(run: RunPaths, vid: str, repeat: int | None, live: bool) -> Cell:
    summary = read_json(run.results(vid).run_summary)
    if not isinstance(summary, dict) or summary.get("status") not in FINAL:
        phase = (phase_under_way(run.results(vid).commands_index) or "starting") if live else ""
        return Cell(run.run_id, vid, repeat, "running" if live else "partial",
                    reason="" if live else "no run-summary.json: the run was cut short",
                    phase=phase or ("queued" if live else ""))
    agent = _dict(summary.get("agent"))
    duration = _float(summary.get("duration_ms"))
    return Cell(
        run.run_id, vid, repeat if repeat is not None else summary.get("repeat"),
        str(summary["status"]), reason=why(summary),
        cost_usd=_float(agent.get("cost_usd")),
        duration_seconds=(duration / 1000 if duration is not None
                          else _float(summary.get("duration_seconds"))),
        input_tokens=agent.get("input_tokens"), output_tokens=agent.get("output_tokens"),
        turns=agent.get("turns"))


# The phase under way, from the last command a variant recorded (commands.jsonl is written
# as commands end: after a snapshot the phase under way is the next one).
def variants_of(run: RunPaths) -> list[str]:
    ids = set(run.selected_variants())
    results = run.root / "results"
    if results.is_dir():
        ids.update(p.name for p in results.iterdir() if p.is_dir())
    return sorted(ids)


# -- the list of runs ---------------------------------------------------------------------

@dataclass
class RunListRow:
    run_id: str
    experiment_id: str
    created_epoch: float
    status: str
    partial: bool
    live: bool
    variants: int
    counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    duration_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_row(runs_dir: Path, info: RunRow) -> RunListRow:
    run = RunPaths(info.path)
    index = read_json(run.index)
    partial = not isinstance(index, dict)
    live = partial and is_live(runs_dir, info.run_id)
    counts: dict[str, int] = {}
    cost = 0.0
    starts, ends = [], []
    vids = variants_of(run)
    for vid in vids:
        summary = read_json(run.results(vid).run_summary)
        if not isinstance(summary, dict) or summary.get("status") not in FINAL:
            key = "running" if live else "unfinished"
            counts[key] = counts.get(key, 0) + 1
            continue
        status = str(summary["status"])
        counts[status] = counts.get(status, 0) + 1
        cost += _float(_dict(summary.get("agent")).get("cost_usd")) or 0.0
        if _float(summary.get("started_at_epoch")) is not None:
            starts.append(float(summary["started_at_epoch"]))
        if _float(summary.get("ended_at_epoch")) is not None:
            ends.append(float(summary["ended_at_epoch"]))
    status = "running" if live else (
        "partial" if partial else run_status([s for s in counts if s in FINAL]))
    return RunListRow(
        run_id=info.run_id, experiment_id=info.experiment_id,
        created_epoch=info.created_epoch, status=status, partial=partial, live=live,
        variants=len(vids), counts=counts, cost_usd=cost,
        duration_seconds=(max(ends) - min(starts)) if starts and ends else None)


class RowCache:
    """Rows of finished runs, kept while their index.json is unchanged (a resume rewrites
    it): the front page over hundreds of runs then costs a stat per run. A run without an
    index (partial or being written) is read again every time."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[tuple[int, int], RunListRow]] = {}

    def row(self, runs_dir: Path, path: Path) -> RunListRow:
        try:
            st = (path / "index.json").stat()
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        hit = self._rows.get(path.name)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        row = run_row(runs_dir, read_run(path))
        if key is not None:
            self._rows[path.name] = (key, row)
        return row


def list_rows(runs_dir: Path, only: list[str] | None = None,
              cache: RowCache | None = None) -> list[RunListRow]:
    """Every run (or those named), newest first."""
    if not runs_dir.is_dir():
        return []
    paths = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if only:
        paths = [p for p in paths if p.name in only]
    cache = cache or RowCache()
    rows = [cache.row(runs_dir, p) for p in paths]
    rows.sort(key=lambda r: (r.created_epoch, r.run_id), reverse=True)
    return rows


def run_set(runs_dir: Path, run_id: str) -> list[str]:
    """The runs of one `--repeat` invocation that `run_id` belongs to, in repeat order:
    same experiment, ULIDs of the same millisecond (they are made together)."""
    exp, ulid = split_run_id(run_id)
    if not ulid:
        return [run_id]
    stamp = ulid[:10]
    found = []
    for p in runs_dir.glob(f"{exp}-{stamp}*"):
        e, u = split_run_id(p.name)
        if p.is_dir() and e == exp and u and u[:10] == stamp:
            found.append(p.name)
    if run_id not in found:
        found.append(run_id)

    def repeat_of(rid: str) -> tuple[int, str]:
        meta = _first_repeat(RunPaths(runs_dir / rid))
        return (meta if meta is not None else 1 << 30, rid)

    return sorted(found, key=repeat_of)


def _first_repeat(run: RunPaths) -> int | None:
    for vid in variants_of(run):
        for path in (run.results(vid).layout, run.results(vid).run_summary):
            data = read_json(path)
            if isinstance(data, dict) and isinstance(data.get("repeat"), int):
                return int(data["repeat"])
    return None


@dataclass
class Matrix:
    run_ids: list[str]
    variants: list[str]
    cells: dict[str, list[Cell]]   # variant -> one cell per run of the set
    live: bool

    def signature(self) -> str:
        """Changes whenever a cell does: the live page reloads its matrix then."""
        return digest([[v, c.run_id, c.status, c.phase] for v in self.variants
                       for c in self.cells[v]])


def matrix(runs_dir: Path, run_ids: list[str]) -> Matrix:
    runs = [RunPaths(runs_dir / rid) for rid in run_ids]
    lives = [not r.index.is_file() and is_live(runs_dir, r.run_id) for r in runs]
    variants = sorted({v for r in runs for v in variants_of(r)})
    cells = {vid: [cell_of(r, vid, n, live) for n, (r, live) in enumerate(zip(runs, lives,
                                                                                strict=True), 1)]
             for vid in variants}
    return Matrix(run_ids, variants, cells, any(lives))


# -- one variant run ----------------------------------------------------------------------

@dataclass
class Span:
    name: str
    depth: int
    start_ms: float
    duration_ms: float | None
    attributes: dict[str, Any]
    error: bool

    @property
    def label(self) -> str:
        """The span's name with what tells spans of one name apart (a test, a point)."""
        a = self.attributes
        detail = (a.get("axp.test.name") or a.get("axp.point") or a.get("axp.agent")
                  or a.get("axp.entry") or a.get("name"))
        return f"{self.name} {detail}" if detail else self.name


def spans(run: RunPaths, vid: str) -> list[Span]:
    """The harness spans (not the agent's own telemetry), in start order, with depth."""
    from ..query.tables import _span_value

    traces = run.results(vid).traces
    raw: list[dict[str, Any]] = []
    for path in sorted(traces.glob("*.otlp.json")) if traces.is_dir() else []:
        if path.name.endswith(".agent.otlp.json"):
            continue
        doc = read_json(path)
        for rs in _dict(doc).get("resourceSpans") or []:
            for ss in _dict(rs).get("scopeSpans") or []:
                raw += [s for s in _dict(ss).get("spans") or [] if isinstance(s, dict)]
    if not raw:
        return []

    def ns(value: Any) -> int:
        try:
            return int(value)
        except (TypeError, ValueError):
            return 0

    t0 = min(ns(s.get("startTimeUnixNano")) for s in raw)
    parents = {s.get("spanId"): s.get("parentSpanId") for s in raw}

    def depth(sid: Any) -> int:
        d, seen = 0, set()
        while parents.get(sid) and sid not in seen:
            seen.add(sid)
            sid = parents[sid]
            d += 1
        return d

    out = []
    for s in sorted(raw, key=lambda s: ns(s.get("startTimeUnixNano"))):
        start, end = ns(s.get("startTimeUnixNano")), ns(s.get("endTimeUnixNano"))
        attrs = {a.get("key"): _span_value(a.get("value"))
                 for a in s.get("attributes") or [] if isinstance(a, dict)}
        out.append(Span(str(s.get("name")), depth(s.get("spanId")), (start - t0) / 1e6,
                        (end - start) / 1e6 if end else None,
                        {str(k): v for k, v in attrs.items()},
                        _dict(s.get("status")).get("code") == 2))
    return out


@dataclass
class TestView:
    __test__ = False

    kind: str
    name: str
    status: str
    exit_code: int | None
    duration_ms: float | None
    reason: str
    stdout_tail: str
    stderr_tail: str
    stdout_path: str | None
    stderr_path: str | None


def tests(run: RunPaths, vid: str, summary: dict[str, Any]) -> list[TestView]:
    v = run.results(vid)
    out = []
    for t in summary.get("tests") or []:
        if not isinstance(t, dict):
            continue
        kind, name = str(t.get("kind", "")), str(t.get("name", ""))
        paths = []
        for stream in ("stdout", "stderr"):
            p = v.test_log(kind, name, stream)
            paths.append(p.relative_to(v.root).as_posix() if p.is_file() else None)
        ms = _float(t.get("duration_ms"))
        out.append(TestView(kind, name, str(t.get("status")), t.get("exit_code"),
                            ms if ms is not None else (_float(t.get("duration_seconds")) or 0)
                            * 1000, str(t.get("reason") or ""),
                            str(t.get("stdout_tail") or "")[-2000:],
                            str(t.get("stderr_tail") or "")[-2000:], paths[0], paths[1]))
    return out


@dataclass
class FileChange:
    path: str
    change: str
    size: int | None
    note: str | None
    patch_path: str | None
    lines: list[tuple[str, str]]   # (css class, text) of the unified diff
    cut: bool


@dataclass
class DiffPoint:
    seq: int
    point: str
    previous_point: str | None
    changes: list[FileChange]


def diff_line_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "ctx"


def read_text_head(path: Path, limit: int) -> tuple[str, bool]:
    """The first `limit` bytes of a file as text, and whether there was more."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return "", False
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def diff_points(run: RunPaths, vid: str) -> list[DiffPoint]:
    fs = run.results(vid).fs_diff
    records = [r for r in (read_json(p) for p in fs.glob("*.json")) if isinstance(r, dict)] \
        if fs.is_dir() else []
    out = []
    for rec in sorted(records, key=lambda r: int(r.get("seq") or 0)):
        changes = []
        for c in rec.get("changes") or []:
            if not isinstance(c, dict):
                continue
            lines: list[tuple[str, str]] = []
            cut = False
            patch = c.get("patch")
            if isinstance(patch, str) and patch:
                try:  # a record names its patch; nothing outside the variant is read
                    text, cut = read_text_head(variant_file(run, vid, f"fs-diff/{patch}"),
                                               MAX_PATCH_BYTES)
                except BadPath:
                    text, cut, patch = "", False, None
                lines = [(diff_line_class(line), line) for line in text.splitlines()]
            changes.append(FileChange(str(c.get("path")), str(c.get("change")), c.get("size"),
                                      c.get("note"),
                                      f"fs-diff/{patch}" if isinstance(patch, str) else None,
                                      lines, cut))
        out.append(DiffPoint(int(rec.get("seq") or 0), str(rec.get("point")),
                             rec.get("previous_point"), changes))
    return out


def commands(run: RunPaths, vid: str) -> list[dict[str, Any]]:
    from ..record.jsonio import json_records

    try:
        with open(run.results(vid).commands_index, encoding="utf-8", errors="replace") as f:
            records = list(json_records(f))
    except OSError:
        return []
    out = []
    for r in records:
        argv = r.get("argv")
        shown = argv[-1] if isinstance(argv, list) and argv and argv[0] == "bash" else argv
        out.append({
            "id": r.get("id"), "phase": r.get("phase"), "name": r.get("name"),
            "command": short(shown if isinstance(shown, str) else json.dumps(shown), 4000),
            "user": r.get("user"), "exit_code": r.get("exit_code"),
            "duration_seconds": _float(r.get("duration_seconds")),
            "timed_out": bool(r.get("timed_out")),
            "stdout_path": r.get("stdout_path"), "stderr_path": r.get("stderr_path"),
            "stdout_bytes": r.get("stdout_bytes"), "stderr_bytes": r.get("stderr_bytes"),
        })
    return out


def api_requests(run: RunPaths, vid: str) -> list[dict[str, Any]]:
    bodies = run.results(vid).api_bodies
    if not bodies.is_dir():
        return []
    stems = sorted({p.name.split(".", 1)[0] for p in bodies.iterdir()
                    if p.name.endswith((".request.json", ".response.json"))})
    out = []
    for stem in stems:
        req_path, resp_path = bodies / f"{stem}.request.json", bodies / f"{stem}.response.json"
        req_text, req_cut = read_text_head(req_path, MAX_BODY_BYTES)
        resp_text, resp_cut = read_text_head(resp_path, MAX_BODY_BYTES)
        req = _loads(req_text) if not req_cut else {}
        resp = _loads(resp_text) if not resp_cut else {}
        body = req.get("body")
        usage = _dict(resp.get("usage"))
        error = resp.get("error")
        out.append({
            "seq": stem, "method": req.get("method"), "path": req.get("path"),
            "model": _dict(body).get("model"), "status": resp.get("status"),
            "duration_ms": resp.get("duration_ms"), "cost_usd": _float(resp.get("cost_usd")),
            "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
            "error": error if isinstance(error, str) else (json.dumps(error) if error else None),
            "request_body": short(json.dumps(body, indent=1, ensure_ascii=False), 8000)
            if body is not None else (req_text[:8000] if req_cut else ""),
            "request_path": f"api-bodies/{req_path.name}" if req_path.is_file() else None,
            "response_path": f"api-bodies/{resp_path.name}" if resp_path.is_file() else None,
        })
    return out


def _loads(text: str) -> dict[str, Any]:
    try:
        return _dict(json.loads(text))
    except ValueError:
        return {}


# -- the trajectory: the trace read in pages ----------------------------------------------

@dataclass
class Step:
    kind: str          # prompt, message, thought, tool, permission, usage, plan, result, meta,
    seq: int           # stdout, event, unreadable
    ts_ms: float | None
    title: str = ""
    text: str = ""
    tool_name: str = ""
    tool_kind: str = ""
    status: str = ""
    input: str = ""
    output: str = ""
    tool_call_id: str = ""
    updates: int = 0
    offset: int = 0    # byte offset of the event in the trace file


def _pretty(value: Any) -> str:
    if value is None or value == {} or value == []:
        return ""
    if isinstance(value, str):
        return short(value)
    return short(json.dumps(value, indent=1, ensure_ascii=False))


def _content_text(content: Any) -> str:
    """Text of an ACP content block or a list of them (tool call content included)."""
    if isinstance(content, list):
        return "\n".join(t for t in (_content_text(c) for c in content) if t)
    if not isinstance(content, dict):
        return ""
    if isinstance(content.get("text"), str):
        return str(content["text"])
    if "content" in content:
        return _content_text(content["content"])
    if content.get("type") == "diff":
        return f"diff of {content.get('path')}"
    return ""


def _frame(event: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC frame of a trace event: ours keep it under raw_json, a frame recorder's
    under msg."""
    return _dict(event.get("raw_json") if "raw_json" in event else event.get("msg"))


def event_step(event: dict[str, Any], seq: int, t0: int | None) -> Step:
    frame = _frame(event)
    ts = event.get("ts_ns")
    ts_ms = (ts - t0) / 1e6 if isinstance(ts, int) and t0 is not None else None
    if ts_ms is None and isinstance(event.get("t"), (int, float)):
        ts_ms = float(event["t"]) * 1000
    method = frame.get("method")
    params = _dict(frame.get("params"))
    if method == "session/update":
        update = _dict(params.get("update"))
        kind = str(update.get("sessionUpdate") or event.get("kind") or "")
        if kind in ("agent_message_chunk", "user_message_chunk", "agent_thought_chunk"):
            role = {"agent_message_chunk": "message", "user_message_chunk": "prompt",
                    "agent_thought_chunk": "thought"}[kind]
            return Step(role, seq, ts_ms, text=short(_content_text(update.get("content"))))
        if kind in ("tool_call", "tool_call_update"):
            claude = _dict(_dict(update.get("_meta")).get("claudeCode"))
            output = update.get("rawOutput")
            if output is None and update.get("content"):
                output = _content_text(update.get("content")) if kind == "tool_call_update" \
                    else None
            return Step("tool", seq, ts_ms, title=str(update.get("title") or ""),
                        tool_name=str(claude.get("toolName") or update.get("name") or ""),
                        tool_kind=str(update.get("kind") or ""),
                        status=str(update.get("status") or ""),
                        input=_pretty(update.get("rawInput")), output=_pretty(output),
                        tool_call_id=str(update.get("toolCallId")
                                         or event.get("tool_call_id") or ""),
                        updates=1 if kind == "tool_call_update" else 0)
        if kind == "usage_update":
            cost = _dict(update.get("cost"))
            text = f"context {update.get('used')} of {update.get('size')} tokens"
            if cost.get("amount") is not None:
                text += f"; cost {cost.get('amount')} {cost.get('currency', '')}".rstrip()
            return Step("usage", seq, ts_ms, text=text)
        if kind == "plan":
            entries = update.get("entries") or []
            text = "\n".join(f"[{_dict(e).get('status', '')}] {_dict(e).get('content', '')}"
                             for e in entries if isinstance(e, dict))
            return Step("plan", seq, ts_ms, text=short(text))
        return Step("event", seq, ts_ms, title=kind, text=_pretty(update))
    if method == "session/prompt":
        return Step("prompt", seq, ts_ms, text=short(_content_text(params.get("prompt"))))
    if method == "session/request_permission":
        call = _dict(params.get("toolCall"))
        options = ", ".join(str(_dict(o).get("name") or _dict(o).get("optionId"))
                            for o in params.get("options") or [])
        return Step("permission", seq, ts_ms, title=str(call.get("title") or ""),
                    input=_pretty(call.get("rawInput")), text=f"options: {options}",
                    tool_call_id=str(call.get("toolCallId") or ""))
    result = frame.get("result")
    if isinstance(result, dict) and "outcome" in result:
        outcome = _dict(result.get("outcome"))
        return Step("permission", seq, ts_ms, title="answer",
                    text=str(outcome.get("optionId") or outcome.get("outcome") or ""))
    if isinstance(result, dict) and "stopReason" in result:
        usage = _dict(result.get("usage"))
        text = f"stop: {result.get('stopReason')}"
        if usage:
            text += "; usage: " + ", ".join(f"{k} {v}" for k, v in usage.items())
        return Step("result", seq, ts_ms, text=text)
    if isinstance(frame.get("axp_stdout"), str):
        return Step("stdout", seq, ts_ms, text=short(frame["axp_stdout"]))
    if event.get("kind") == "axp_meta":
        return Step("meta", seq, ts_ms, text=", ".join(f"{k}: {v}" for k, v in frame.items()
                                                       if k != "schema_version"))
    if method:
        label = str(method)
    elif "result" in frame or "error" in frame:
        # An answer names the request it answers in its envelope (the ACP frame tracer's).
        answered = event.get("method")
        label = f"response to {answered}" if answered else "response"
        if "error" in frame:
            label += ": error"
    else:
        label = str(event.get("kind") or "event")
    return Step("event", seq, ts_ms, title=label, text=_pretty(frame))


def fold(steps: list[Step]) -> list[Step]:
    """Message chunks in a row become one message; a tool call's updates join the call;
    usage updates in a row keep the last (the usage as it has grown)."""
    out: list[Step] = []
    calls: dict[str, Step] = {}
    for s in steps:
        last = out[-1] if out else None
        if s.kind in ("message", "thought", "prompt") and last and last.kind == s.kind:
            last.text = short(last.text + s.text)
            continue
        if s.kind == "usage" and last and last.kind == "usage":
            out[-1] = s
            continue
        if s.kind == "tool" and s.tool_call_id and s.tool_call_id in calls:
            call = calls[s.tool_call_id]
            for name in ("title", "tool_name", "tool_kind", "status", "input", "output"):
                if getattr(s, name):
                    setattr(call, name, getattr(s, name))
            call.updates += 1
            continue
        if s.kind == "tool" and s.tool_call_id:
            calls[s.tool_call_id] = s
        out.append(s)
    return out


@dataclass
class TracePage:
    steps: list[Step]
    offset: int
    next_offset: int | None   # None: the end of the file as it is now
    size: int
    t0: int | None


def trace_page(path: Path, offset: int = 0, limit: int = TRACE_PAGE_EVENTS,
               t0: int | None = None) -> TracePage:
    """Up to `limit` events from byte `offset`, folded into steps. Only those lines are read:
    a trace of any size opens at the speed of its first page."""
    try:
        f = open(path, "rb")
    except OSError:
        return TracePage([], offset, None, 0, t0)
    with f:
        size = os.fstat(f.fileno()).st_size
        f.seek(offset)
        steps: list[Step] = []
        pos = offset
        n = 0
        while n < limit:
            line = f.readline(MAX_EVENT_BYTES + 1)
            if not line:
                break
            start = pos
            pos += len(line)
            if len(line) > MAX_EVENT_BYTES and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of a huge line
                    line = f.readline(MAX_EVENT_BYTES)
                    pos += len(line)
                steps.append(Step("unreadable", n, None, text=f"an event of more than "
                                  f"{MAX_EVENT_BYTES} bytes at byte {start}: see the raw file",
                                  offset=start))
                n += 1
                continue
            if not line.endswith(b"\n") and pos >= size:
                pos = start  # a line still being written: read it next time
                break
            n += 1
            try:
                event = json.loads(line)
            except ValueError:
                if line.strip():
                    steps.append(Step("unreadable", n, None, text="a line that is not JSON",
                                      offset=start))
                continue
            if not isinstance(event, dict):
                continue
            if t0 is None and isinstance(event.get("ts_ns"), int):
                t0 = int(event["ts_ns"])
            seq = event.get("seq")
            step = event_step(event, seq if isinstance(seq, int) else n, t0)
            step.offset = start
            steps.append(step)
    return TracePage(fold(steps), offset, pos if pos < size else None, size, t0)


def trace_path(run: RunPaths, vid: str) -> Path:
    return run.results(vid).agent_trace


# -- files served on demand ---------------------------------------------------------------

class BadPath(ValueError):
    pass


def variant_file(run: RunPaths, vid: str, rel: str) -> Path:
    """A file inside the variant's results folder, named relative to it; nothing outside
    (no `..`, no absolute path, no symlink leading out)."""
    root = run.results(vid).root.resolve()
    if not rel or rel.startswith("/") or "\\" in rel or any(
            part in ("", ".", "..") for part in rel.split("/")):
        raise BadPath(rel)
    path = (root / rel).resolve()
    if root not in path.parents or not path.is_file():
        raise BadPath(rel)
    return path


def file_page(path: Path, offset: int, limit: int = FILE_PAGE_BYTES) -> tuple[bytes, int]:
    """`limit` bytes from `offset`, and the file's size."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, offset))
        return f.read(limit), size


def log_tail(path: Path, limit: int = 2000) -> str:
    return tail(path, limit)
