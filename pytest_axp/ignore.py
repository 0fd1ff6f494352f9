"""`.axpignore`: gitignore syntax, matched against paths relative to the staged folder."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """gitignore glob -> regex over a '/'-separated relative path."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern[i:i + 3] == "**/":
                out.append("(?:.*/)?")
                i += 3
                continue
            if pattern[i:i + 2] == "**":
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class IgnoreRules:
    """Rules of one .axpignore file, anchored at `base` (relative dir, '' for the root)."""

    def __init__(self, text: str, base: str = "") -> None:
        self.base = base.strip("/")
        self.rules: list[_Rule] = []
        for line in text.splitlines():
            line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            body = _translate(line)
            regex = f"^{body}(?:/.*)?$" if anchored else f"^(?:.*/)?{body}(?:/.*)?$"
            self.rules.append(_Rule(re.compile(regex), negate, dir_only))

    def decide(self, rel: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included, None: no rule matched."""
        if self.base:
            if not rel.startswith(self.base + "/"):
                return None
            rel = rel[len(self.base) + 1:]
        verdict = None
        for rule in self.rules:
            if rule.dir_only and not is_dir and not _under_dir_match(rule, rel):
                continue
            if rule.regex.match(rel):
                verdict = not rule.negate
        return verdict


def _under_dir_match(rule: _Rule, rel: str) -> bool:
    # A dir-only rule still excludes files below a matching directory.
    parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
    return bool(parent) and bool(rule.regex.match(parent))


def is_ignored(stack: list[IgnoreRules], rel: str, is_dir: bool) -> bool:
    verdict = False
    for rules in stack:
        d = rules.decide(rel, is_dir)
        if d is not None:
            verdict = d
    return verdict
