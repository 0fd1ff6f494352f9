"""The viewer's app over a synthetic run folder, through Starlette's test client (no browser,
no Docker): paging of a large trace and of logs, confinement, headers, the live fragments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_axp.view import data
from pytest_axp.view.app import create_app

RID = "exp-01ARZ3NDEKTSV4RRFFQ69G5FAV"
# Starlette's test client warns that it will move off httpx; the requests are the same.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`")


def _event(seq: int) -> dict:
    return {"seq": seq, "ts_ns": 10**18 + seq, "kind": "tool_call", "tool_call_id": f"c{seq}",
            "raw_json": {"jsonrpc": "2.0", "method": "session/update", "params": {
                "update": {"sessionUpdate": "tool_call", "toolCallId": f"c{seq}",
                           "title": f"call number {seq}", "rawInput": {"command": "ls"}}}}}


@pytest.fixture
def client(tmp_path: Path):
    from starlette.testclient import TestClient

    runs = tmp_path / "runs"
    v = runs / RID / "results" / "a"
    (runs / RID / "variants" / "a").mkdir(parents=True)
    (runs / RID / "variants" / "a" / "resolved-variant.yaml").write_text("id: a\n")
    (v / "application").mkdir(parents=True)
    (v / "run-summary.json").write_text(json.dumps({
        "run_id": RID, "variant_id": "a", "experiment_id": "exp", "status": "fail",
        "repeat": 1, "agent": {"name": "command", "exit_code": 0},
        "tests": [{"kind": "application", "name": "t", "status": "fail", "exit_code": 1,
                   "stderr_tail": "bad <thing>\n"}]}))
    (v / "application" / "t.stderr.log").write_text("x" * (data.FILE_PAGE_BYTES + 10)
                                                    + "END-OF-LOG")
    with open(v / "agent-trace.jsonl", "w") as f:
        for i in range(450):
            f.write(json.dumps(_event(i)) + "\n")
    with TestClient(create_app(runs, allowed_hosts=["testserver"])) as c:
        yield c


def test_a_large_trace_opens_on_its_first_page_and_pages_on(client):
    r = client.get(f"/runs/{RID}/a")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.text.count('class="step step-tool"') == data.TRACE_PAGE_EVENTS
    assert "call number 199" in r.text and "call number 200" not in r.text
    assert "bad &lt;thing&gt;" in r.text and "<thing>" not in r.text
    more = re.search(r'data-next="([^"]+)"', r.text)
    assert more
    nxt = client.get(more.group(1).replace("&amp;", "&"))
    assert "call number 200" in nxt.text and "call number 399" in nxt.text
    last = client.get(re.search(r'data-next="([^"]+)"', nxt.text).group(1).replace("&amp;", "&"))
    assert "call number 449" in last.text and "data-next" not in last.text


def test_logs_are_paged_and_confined(client):
    r = client.get(f"/runs/{RID}/a/log", params={"path": "application/t.stderr.log"})
    assert r.status_code == 200 and "END-OF-LOG" not in r.text and ">next</a>" in r.text
    r = client.get(f"/runs/{RID}/a/log", params={"path": "application/t.stderr.log",
                                                 "offset": str(data.FILE_PAGE_BYTES)})
    assert "END-OF-LOG" in r.text
    raw = client.get(f"/runs/{RID}/a/raw", params={"path": "application/t.stderr.log"})
    assert raw.headers["content-type"].startswith("text/plain")
    for bad in ("../../../../etc/passwd", "/etc/passwd", "../a/run-summary.json"):
        assert client.get(f"/runs/{RID}/a/log", params={"path": bad}).status_code == 404
    assert client.get(f"/runs/{RID}/a/log", params={"path": "x", "offset": "z"}).status_code \
        == 400
    assert client.get("/runs/..%2F..%2Fetc").status_code == 404
    assert client.get(f"/runs/{RID}/nope").status_code == 404


def test_fragments_answer_204_while_nothing_changed(client):
    page = client.get("/")
    sig = re.search(r'data-sig="([^"]+)"', page.text).group(1)
    assert client.get("/fragments/runs", params={"sig": sig}).status_code == 204
    changed = client.get("/fragments/runs", params={"sig": "old"})
    assert changed.status_code == 200 and RID in changed.text
    assert changed.headers["x-signature"] == sig
    run = client.get(f"/runs/{RID}")
    sig = re.search(r'data-sig="([^"]+)"', run.text).group(1)
    r = client.get(f"/fragments/run/{RID}", params={"sig": sig})
    assert r.status_code == 204 and r.headers["x-live"] == "0"


def test_another_host_name_is_refused(client):
    # A page elsewhere cannot read the runs through a DNS name pointed at this machine.
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
