"""The query tables, derived from one run folder (seed 004's layout) and cached as Parquet.

Each table is built as rows of plain Python values, written as newline-delimited JSON and
turned into Parquet by DuckDB with an explicit column list, so every table has the same
columns and types whether it has rows or not. The cache lives at
`.axp/derived/<run-id>/<table>.parquet`; its manifest holds a digest of every file of the
run folder (path, size, mtime), so a changed run is derived again on next use.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..record.jsonio import json_records, read_json, write_atomic
from ..record.layout import RunPaths
from ..runs import read_run

# Bump when a table's columns or meaning change: every cached run is derived again.
DERIVE_VERSION = 3  # 3: ACP prompts and streamed chunks as messages
MANIFEST = "manifest.json"

# Column name -> DuckDB type, in order. Timestamps are UTC (TIMESTAMP without zone, so
# Python clients need no time zone database); *_ns columns keep full precision.
SCHEMAS: dict[str, dict[str, str]] = {
    "runs": {
        "run_id": "VARCHAR", "experiment_id": "VARCHAR", "variant_id": "VARCHAR",
        "variant_tag": "VARCHAR", "repeat": "INTEGER", "status": "VARCHAR",
        "started_at": "TIMESTAMP", "ended_at": "TIMESTAMP", "duration_seconds": "DOUBLE",
        "agent_name": "VARCHAR", "model": "VARCHAR", "model_source": "VARCHAR",
        "turns": "INTEGER",
        "input_tokens": "BIGINT", "output_tokens": "BIGINT",
        "cache_creation_input_tokens": "BIGINT", "cache_read_input_tokens": "BIGINT",
        "cost_usd": "DOUBLE", "exit_code": "INTEGER", "timed_out": "BOOLEAN",
        "stopped_reason": "VARCHAR", "fingerprint": "VARCHAR", "tests_total": "INTEGER",
        "tests_passed": "INTEGER", "error": "VARCHAR",
    },
    "tests": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "kind": "VARCHAR", "name": "VARCHAR",
        "status": "VARCHAR", "exit_code": "INTEGER", "duration_seconds": "DOUBLE",
        "stdout_bytes": "BIGINT", "stderr_bytes": "BIGINT", "stdout_path": "VARCHAR",
        "stderr_path": "VARCHAR",
    },
    "agent_events": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "seq": "BIGINT", "ts_ns": "BIGINT",
        "ts": "TIMESTAMP", "kind": "VARCHAR", "session_id": "VARCHAR",
        "tool_call_id": "VARCHAR", "raw_json": "JSON",
    },
    "tool_calls": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "tool_call_id": "VARCHAR",
        "seq": "BIGINT", "ts_ns": "BIGINT", "ended_ts_ns": "BIGINT", "duration_ms": "DOUBLE",
        "tool_name": "VARCHAR", "title": "VARCHAR", "tool_kind": "VARCHAR", "input": "JSON",
        "status": "VARCHAR", "output": "VARCHAR", "updates": "INTEGER",
    },
    "messages": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "seq": "BIGINT", "ts_ns": "BIGINT",
        "role": "VARCHAR", "text": "VARCHAR",
    },
    "harness_spans": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "trace_id": "VARCHAR",
        "span_id": "VARCHAR", "parent_span_id": "VARCHAR", "name": "VARCHAR",
        "start_ns": "BIGINT", "end_ns": "BIGINT", "start_time": "TIMESTAMP",
        "end_time": "TIMESTAMP", "duration_ms": "DOUBLE", "status_code": "INTEGER",
        "attributes": "JSON", "file": "VARCHAR",
    },
    "commands": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "id": "VARCHAR", "seq": "INTEGER",
        "phase": "VARCHAR", "name": "VARCHAR", "argv": "JSON", "user": "VARCHAR",
        "workdir": "VARCHAR", "started_at": "TIMESTAMP", "duration_seconds": "DOUBLE",
        "exit_code": "INTEGER", "timed_out": "BOOLEAN", "stdout_bytes": "BIGINT",
        "stderr_bytes": "BIGINT", "stdout_path": "VARCHAR", "stderr_path": "VARCHAR",
        "span_id": "VARCHAR", "extra": "JSON",
    },
    "api_requests": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "seq": "INTEGER", "time": "VARCHAR",
        "method": "VARCHAR", "path": "VARCHAR", "model": "VARCHAR", "stream": "BOOLEAN",
        "mode": "VARCHAR", "status": "INTEGER", "duration_ms": "DOUBLE",
        "input_tokens": "BIGINT", "output_tokens": "BIGINT",
        "cache_creation_input_tokens": "BIGINT", "cache_read_input_tokens": "BIGINT",
        "cost_usd": "DOUBLE", "stop_reason": "VARCHAR", "error": "VARCHAR",
        "request_path": "VARCHAR", "response_path": "VARCHAR",
    },
    "file_changes": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "seq": "INTEGER", "point": "VARCHAR",
        "previous_point": "VARCHAR", "path": "VARCHAR", "change": "VARCHAR",
        "size": "BIGINT", "sha256": "VARCHAR", "mode": "VARCHAR", "note": "VARCHAR",
        "patch_path": "VARCHAR",
    },
    "artifacts": {
        "run_id": "VARCHAR", "variant_id": "VARCHAR", "path": "VARCHAR",
        "size_bytes": "BIGINT", "modified_at": "TIMESTAMP",
    },
    "experiment_runs": {
        "run_id": "VARCHAR", "experiment_id": "VARCHAR", "status": "VARCHAR",
        "created": "TIMESTAMP", "variants": "INTEGER",
    },
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)


# -- helpers ------------------------------------------------------------------------------

def _ts(epoch: float | None) -> str | None:
    """An epoch as an ISO timestamp in UTC (what DuckDB reads into TIMESTAMP)."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(float(epoch), UTC).replace(tzinfo=None).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: records are read as found."""
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    """Tool output and the like as text: strings stay, anything else becomes its JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _clean_str(value: str) -> str:
    # File names from os.walk may carry surrogate escapes, which JSON readers reject.
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (an interrupted writer) is skipped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from json_records(f)
    except OSError:
        return


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def variant_ids(run: RunPaths) -> list[str]:
    """Variants of a run: those selected (resolved-variant.yaml) plus any with results."""
    ids = set(run.selected_variants())
    results = run.root / "results"
    if results.is_dir():
        ids.update(p.name for p in results.iterdir() if p.is_dir())
    return sorted(ids)


def _rel(run: RunPaths, path: Path) -> str:
    return path.relative_to(run.root).as_posix()


# -- table builders: each yields dict rows for one variant (or the run) ---------------------

def _runs_rows(run: RunPaths, vid: str, experiment_id: str) -> Iterator[dict[str, Any]]:
    v = run.results(vid)
    summary = read_json(v.run_summary)
    summary = summary if isinstance(summary, dict) else {}
    layout = read_json(v.layout)
    layout = layout if isinstance(layout, dict) else {}
    agent = _mapping(summary.get("agent"))
    tests = [t for t in summary.get("tests") or [] if isinstance(t, dict)]
    started, ended = summary.get("started_at_epoch"), summary.get("ended_at_epoch")
    duration = (summary["duration_ms"] / 1000 if _float(summary.get("duration_ms")) is not None
                else _float(summary.get("duration_seconds")))
    error = summary.get("error")
    yield {
        "run_id": run.run_id,
        "experiment_id": summary.get("experiment_id") or experiment_id,
        "variant_id": vid,
        "variant_tag": summary.get("variant_tag") or vid,
        "repeat": _int(summary.get("repeat", layout.get("repeat"))),
        # A variant with no summary has not finished: not a pass, fail, timeout or error.
        "status": summary.get("status") or "partial",
        "started_at": _ts(started), "ended_at": _ts(ended),
        "duration_seconds": duration,
        "agent_name": agent.get("name"), "model": agent.get("model") or _model_of(run, vid),
        "model_source": _model_source(agent),
        "turns": _int(agent.get("turns")),
        "input_tokens": _int(agent.get("input_tokens")),
        "output_tokens": _int(agent.get("output_tokens")),
        "cache_creation_input_tokens": _int(agent.get("cache_creation_input_tokens")),
        "cache_read_input_tokens": _int(agent.get("cache_read_input_tokens")),
        "cost_usd": _float(agent.get("cost_usd")),
        "exit_code": _int(agent.get("exit_code")),
        "timed_out": agent.get("timed_out") if isinstance(agent.get("timed_out"), bool) else None,
        "stopped_reason": agent.get("stopped_reason"),
        "fingerprint": summary.get("fingerprint"),
        "tests_total": len(tests) if summary else None,
        "tests_passed": sum(1 for t in tests if t.get("status") == "pass") if summary else None,
        "error": error.get("message") if isinstance(error, dict) else None,
    }


def _model_source(agent: dict[str, Any]) -> str:
    """scripted, live or none; summaries written before it was recorded: the command agent
    asks no model, and a claude run cannot be told apart (unknown)."""
    source = agent.get("model_source")
    if isinstance(source, str) and source:
        return source
    return "none" if agent.get("name") == "command" else "unknown"


def _model_of(run: RunPaths, vid: str) -> str | None:
    """The model from resolved-variant.yaml when the summary did not record one."""
    path = run.resolved_variant(vid)
    if not path.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(path.read_text())
        model = (data.get("agent") or {}).get("model")
        return str(model) if model else None
    except Exception:
        return None


def _tests_rows(run: RunPaths, vid: str) -> Iterator[dict[str, Any]]:
    v = run.results(vid)
    summary = read_json(v.run_summary)
    if not isinstance(summary, dict):
        return
    for t in summary.get("tests") or []:
        if not isinstance(t, dict):
            continue
        kind, name = str(t.get("kind", "")), str(t.get("name", ""))
        out, err = v.test_log(kind, name, "stdout"), v.test_log(kind, name, "stderr")
        duration = (t["duration_ms"] / 1000 if _float(t.get("duration_ms")) is not None
                    else _float(t.get("duration_seconds")))
        yield {
            "run_id": run.run_id, "variant_id": vid, "kind": kind, "name": name,
            "status": t.get("status"), "exit_code": _int(t.get("exit_code")),
            "duration_seconds": duration,
            "stdout_bytes": _size(out), "stderr_bytes": _size(err),
            "stdout_path": _rel(run, out) if out.exists() else None,
            "stderr_path": _rel(run, err) if err.exists() else None,
        }


def _update(event: dict[str, Any]) -> dict[str, Any]:
    """The ACP `session/update` payload of a trace event ({} for our own kinds)."""
    raw = event.get("raw_json")
    params = raw.get("params") if isinstance(raw, dict) else None
    update = params.get("update") if isinstance(params, dict) else None
    return update if isinstance(update, dict) else {}


_Rows = list[dict[str, Any]]

# Updates that may arrive in the middle of a streamed message without ending it.
_QUIET_KINDS = frozenset({"usage_update", "available_commands_update", "axp_meta"})


def _prompt_text(raw: Any) -> str | None:
    """The text of a `session/prompt` request's prompt blocks."""
    params = raw.get("params") if isinstance(raw, dict) else None
    blocks = params.get("prompt") if isinstance(params, dict) else None
    if not isinstance(blocks, list):
        return None
    texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return "\n".join(texts) if texts else None


def _trace_rows(run: RunPaths, vid: str) -> tuple[_Rows, _Rows, _Rows]:
    """agent_events, tool_calls and messages, all from one pass over agent-trace.jsonl."""
    events: _Rows = []
    messages: _Rows = []
    calls: dict[str, dict[str, Any]] = {}
    chunk_role: str | None = None  # the role of the message being streamed, if any
    roles = {"agent_message_chunk": "agent", "user_message_chunk": "user",
             "agent_thought_chunk": "thought"}
    for line_no, e in enumerate(_jsonl(run.results(vid).agent_trace)):
        seq = _int(e.get("seq"))
        seq = line_no if seq is None else seq
        ts_ns = _int(e.get("ts_ns"))
        kind = e.get("kind")
        if kind not in roles and kind not in _QUIET_KINDS:
            chunk_role = None
        events.append({
            "run_id": run.run_id, "variant_id": vid, "seq": seq, "ts_ns": ts_ns,
            "ts": _ts(ts_ns / 1e9) if ts_ns is not None else None, "kind": kind,
            "session_id": e.get("session_id"), "tool_call_id": e.get("tool_call_id"),
            "raw_json": e.get("raw_json"),
        })
        update = _update(e)
        if kind == "session/prompt":
            # ACP does not echo the prompt back as user chunks: the request is the message.
            text = _prompt_text(e.get("raw_json"))
            if text is not None:
                messages.append({"run_id": run.run_id, "variant_id": vid, "seq": seq,
                                 "ts_ns": ts_ns, "role": "user", "text": text})
            chunk_role = None
        elif kind in roles:
            content = update.get("content")
            text = content.get("text") if isinstance(content, dict) else None
            if isinstance(text, str):
                if chunk_role == roles[kind] and messages:
                    # A streamed message arrives in chunks: consecutive ones are one message.
                    messages[-1]["text"] += text
                else:
                    messages.append({"run_id": run.run_id, "variant_id": vid, "seq": seq,
                                     "ts_ns": ts_ns, "role": roles[kind], "text": text})
                chunk_role = roles[kind]
            continue
        elif kind in ("tool_call", "tool_call_update"):
            cid = e.get("tool_call_id") or update.get("toolCallId")
            if not cid:
                continue
            call = calls.get(cid)
            if call is None:
                call = calls[cid] = {
                    "run_id": run.run_id, "variant_id": vid, "tool_call_id": cid,
                    "seq": seq, "ts_ns": ts_ns, "ended_ts_ns": None, "duration_ms": None,
                    "tool_name": None, "title": None, "tool_kind": None, "input": None,
                    "status": None, "output": None, "updates": 0,
                }
            if kind == "tool_call_update":
                call["updates"] += 1
            meta = update.get("_meta")
            claude = meta.get("claudeCode") if isinstance(meta, dict) else None
            if isinstance(claude, dict) and claude.get("toolName"):
                call["tool_name"] = claude["toolName"]
            # Later updates refine earlier ones: the last word on each field wins.
            for src, dst in (("title", "title"), ("kind", "tool_kind"), ("rawInput", "input"),
                             ("status", "status")):
                # An empty rawInput (claude-agent-acp's first frame) tells nothing new.
                if update.get(src) is not None and update[src] != {}:
                    call[dst] = update[src]
            if "rawOutput" in update and update["rawOutput"] is not None:
                call["output"] = _text(update["rawOutput"])
            if call["status"] in ("completed", "failed") and ts_ns is not None:
                call["ended_ts_ns"] = ts_ns
                if call["ts_ns"] is not None:
                    call["duration_ms"] = (ts_ns - call["ts_ns"]) / 1e6
    for call in calls.values():
        if call["tool_name"] is None and isinstance(call["title"], str):
            # Agents without Claude's _meta: the title's "Tool: ..." prefix, if it has one.
            head, sep, _ = call["title"].partition(":")
            call["tool_name"] = head if sep and head.isidentifier() else None
    return events, sorted(calls.values(), key=lambda c: c["seq"]), messages


def _span_value(value: Any) -> Any:
    """An OTLP/JSON AnyValue as a plain value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return _int(value["intValue"])
    if "doubleValue" in value:
        return _float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_span_value(v) for v in (value["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in value:
        return {kv.get("key"): _span_value(kv.get("value"))
                for kv in (value["kvlistValue"] or {}).get("values") or []}
    return None


def _spans_rows(run: RunPaths, vid: str) -> Iterator[dict[str, Any]]:
    traces = run.results(vid).traces
    if not traces.is_dir():
        return
    for path in sorted(traces.glob("*.otlp.json")):
        if path.name.endswith(".agent.otlp.json"):
            continue  # the agent's own telemetry, not harness spans
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        for rs in data.get("resourceSpans") or []:
            for ss in (rs or {}).get("scopeSpans") or []:
                for s in (ss or {}).get("spans") or []:
                    start, end = _int(s.get("startTimeUnixNano")), _int(s.get("endTimeUnixNano"))
                    # An open span (interrupted run) is exported with end 0.
                    end = end if end else None
                    yield {
                        "run_id": run.run_id, "variant_id": vid,
                        "trace_id": s.get("traceId"), "span_id": s.get("spanId"),
                        "parent_span_id": s.get("parentSpanId") or None, "name": s.get("name"),
                        "start_ns": start, "end_ns": end,
                        "start_time": _ts(start / 1e9) if start else None,
                        "end_time": _ts(end / 1e9) if end else None,
                        "duration_ms": (end - start) / 1e6 if start and end else None,
                        "status_code": _int((s.get("status") or {}).get("code")),
                        "attributes": {a.get("key"): _span_value(a.get("value"))
                                       for a in s.get("attributes") or [] if isinstance(a, dict)},
                        "file": _rel(run, path),
                    }


def _commands_rows(run: RunPaths, vid: str) -> Iterator[dict[str, Any]]:
    v = run.results(vid)
    for r in _jsonl(v.commands_index):
        yield {
            "run_id": run.run_id,
            "variant_id": vid,
            "id": r.get("id"),
            "seq": _int(r.get("seq")),
            "phase": r.get("phase"),
            "name": r.get("name"),
            "argv": r.get("argv"),
            "user": r.get("user"),
            "workdir": r.get("workdir"),
            "started_at": _ts(r.get("started_at_epoch")),
            "duration_seconds": _float(r.get("duration_seconds")),
            "exit_code": _int(r.get("exit_code")),
            "timed_out": bool(r.get("timed_out")),
            "stdout_bytes": _int(r.get("stdout_bytes")),
            "stderr_bytes": _int(r.get("stderr_bytes")),
            # Relative to the run folder, like every other path column.
            "stdout_path": _rel(run, v.root / r["stdout_path"]) if r.get("stdout_path") else None,
            "stderr_path": _rel(run, v.root / r["stderr_path"]) if r.get("stderr_path") else None,
            "span_id": r.get("span_id"),
            "extra": r.get("extra"),
        }


def _api_rows(run: RunPaths, vid: str) -> Iterator[dict[str, Any]]:
    bodies = run.results(vid).api_bodies
    if not bodies.is_dir():
        return
    seqs = sorted({p.name.split(".", 1)[0] for p in bodies.glob("*.request.json")}
                  | {p.name.split(".", 1)[0] for p in bodies.glob("*.response.json")})
    for stem in seqs:
        req_path, resp_path = bodies / f"{stem}.request.json", bodies / f"{stem}.response.json"
        req = read_json(req_path) if req_path.exists() else None
        resp = read_json(resp_path) if resp_path.exists() else None
        req = req if isinstance(req, dict) else {}
        resp = resp if isinstance(resp, dict) else {}
        body = _mapping(req.get("body"))
        usage = _mapping(resp.get("usage"))
        message = resp.get("message") if isinstance(resp.get("message"), dict) else None
        if message is None and isinstance(resp.get("body"), dict) and \
                resp["body"].get("type") == "message":
            message = resp["body"]
        error = resp.get("error")
        if (
            error is None
            and isinstance(resp.get("body"), dict)
            and resp["body"].get("type") == "error"
        ):
            error = (resp["body"].get("error") or {}).get("message")
        yield {
            "run_id": run.run_id, "variant_id": vid,
            "seq": _int(req.get("seq", resp.get("seq"))) or _int(stem),
            "time": req.get("time"), "method": req.get("method"), "path": req.get("path"),
            "model": body.get("model") or (message or {}).get("model"),
            "stream": body.get("stream") if isinstance(body.get("stream"), bool) else None,
            "mode": resp.get("mode"), "status": _int(resp.get("status")),
            "duration_ms": _float(resp.get("duration_ms")),
            "input_tokens": _int(usage.get("input_tokens")),
            "output_tokens": _int(usage.get("output_tokens")),
            "cache_creation_input_tokens": _int(usage.get("cache_creation_input_tokens")),
            "cache_read_input_tokens": _int(usage.get("cache_read_input_tokens")),
            "cost_usd": _float(resp.get("cost_usd")),
            "stop_reason": (message or {}).get("stop_reason"),
            "error": _text(error),
            "request_path": _rel(run, req_path) if req_path.exists() else None,
            "response_path": _rel(run, resp_path) if resp_path.exists() else None,
        }


def _fsdiff_rows(run: RunPaths, vid: str) -> Iterator[dict[str, Any]]:
    fs = run.results(vid).fs_diff
    if not fs.is_dir():
        return
    records = []
    for path in fs.glob("*.json"):
        data = read_json(path)
        if isinstance(data, dict):
            records.append(data)
    for rec in sorted(records, key=lambda r: _int(r.get("seq")) or 0):
        for c in rec.get("changes") or []:
            if not isinstance(c, dict):
                continue
            yield {
                "run_id": run.run_id, "variant_id": vid, "seq": _int(rec.get("seq")),
                "point": rec.get("point"), "previous_point": rec.get("previous_point"),
                "path": c.get("path"), "change": c.get("change"), "size": _int(c.get("size")),
                "sha256": c.get("sha256"), "mode": c.get("mode"), "note": c.get("note"),
                "patch_path": _rel(run, fs / c["patch"]) if c.get("patch") else None,
            }


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under `root` (relative POSIX path, stat), symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            yield Path(os.path.relpath(full, root)).as_posix(), st


def _artifact_variant(rel: str) -> str | None:
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] in ("results", "variants"):
        return parts[1]
    return None


# -- deriving and caching ------------------------------------------------------------------

def run_digest(run_root: Path) -> tuple[str, int]:
    """Digest of the run folder's (path, size, mtime) listing, and its file count."""
    h = hashlib.sha256()
    count = 0
    for rel, st in _walk(run_root):
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        count += 1
    return h.hexdigest(), count


def derive_rows(run_root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows for one run folder."""
    run = RunPaths(run_root)
    info = read_run(run_root)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    vids = variant_ids(run)
    for vid in vids:
        rows["runs"].extend(_runs_rows(run, vid, info.experiment_id))
        rows["tests"].extend(_tests_rows(run, vid))
        events, calls, messages = _trace_rows(run, vid)
        rows["agent_events"].extend(events)
        rows["tool_calls"].extend(calls)
        rows["messages"].extend(messages)
        rows["harness_spans"].extend(_spans_rows(run, vid))
        rows["commands"].extend(_commands_rows(run, vid))
        rows["api_requests"].extend(_api_rows(run, vid))
        rows["file_changes"].extend(_fsdiff_rows(run, vid))
    for rel, st in _walk(run_root):
        rows["artifacts"].append({
            "run_id": run.run_id, "variant_id": _artifact_variant(rel), "path": _clean_str(rel),
            "size_bytes": st.st_size, "modified_at": _ts(st.st_mtime)})
    rows["experiment_runs"].append({
        "run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
        "created": _ts(info.created_epoch), "variants": len(vids)})
    return rows


def derived_dir(runs_dir: Path, run_id: str) -> Path:
    """`.axp/derived/<run-id>/` beside `.axp/runs/`."""
    return runs_dir.parent / "derived" / run_id


def _manifest_ok(dest: Path, digest: str) -> bool:
    manifest = read_json(dest / MANIFEST)
    return (isinstance(manifest, dict) and manifest.get("version") == DERIVE_VERSION
            and manifest.get("digest") == digest
            and all((dest / f"{t}.parquet").is_file() for t in TABLES))


def ensure_derived(run_root: Path, dest: Path, *, force: bool = False) -> dict[str, Path]:
    """The Parquet file of every table for this run, derived again when the run changed."""
    digest, count = run_digest(run_root)
    files = {t: dest / f"{t}.parquet" for t in TABLES}
    if not force and _manifest_ok(dest, digest):
        return files
    import duckdb

    rows = derive_rows(run_root)
    dest.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp:
            for table in TABLES:
                src = Path(tmp) / f"{table}.jsonl"
                with open(src, "w", encoding="utf-8") as f:
                    for row in rows[table]:
                        f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                out = Path(tmp) / f"{table}.parquet"
                con.execute(
                    "COPY (SELECT * FROM read_json(?, format='newline_delimited', "
                    "columns=?, maximum_object_size=1073741824)) TO ? (FORMAT parquet)",
                    [str(src), SCHEMAS[table], str(out)])
                # Replace one file at a time; a reader between two replaces still finds
                # complete Parquet, and the manifest below is written only at the end.
                os.replace(out, files[table])
    finally:
        con.close()
    manifest = {"version": DERIVE_VERSION, "run_id": run_root.name, "digest": digest,
                "files": count, "derived_at": datetime.now(UTC).isoformat(),
                "rows": {t: len(r) for t, r in rows.items()}}
    write_atomic(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return files
