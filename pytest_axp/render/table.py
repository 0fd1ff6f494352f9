"""Plain aligned tables: readable in a terminal and stable in CI logs."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], *,
           width: int | None = None) -> str:
    """Columns padded to their widest cell. With `width`, the last column wraps so each
    line fits (never cut: a long reason goes on over several lines)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    last = None
    if width is not None and len(headers) > 1:
        room = width - sum(widths[:-1]) - 2 * (len(headers) - 1)
        if room < widths[-1]:
            last = max(room, 20)
            widths[-1] = min(widths[-1], last)
    lines = []
    for n, row in enumerate(cells):
        parts = textwrap.wrap(row[-1], last, break_long_words=True, break_on_hyphens=False) \
            if last and len(row[-1]) > last else [row[-1]]
        for k, part in enumerate(parts or [""]):
            left = row[:-1] if k == 0 else [""] * (len(row) - 1)
            padded = (c.ljust(w) for c, w in zip([*left, part], widths, strict=False))
            lines.append("  ".join(padded).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fit(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int,
        priority: Callable[[str], float]) -> tuple[list[str], list[list[str]], list[str]]:
    """Drop whole columns, least important first (higher `priority` number), until the
    table fits `width`; returns the kept headers and rows and the dropped headers."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    keep = list(range(len(headers)))
    dropped: list[str] = []

    def total(cols: list[int]) -> int:
        # The last column wraps (see render), so it needs only a little room.
        return sum(min(max(len(r[i]) for r in cells), 20 if i == cols[-1] else width)
                   for i in cols) + 2 * (len(cols) - 1)

    while len(keep) > 1 and total(keep) > width:
        worst = max(keep[1:], key=lambda i: (priority(cells[0][i]), i))
        keep.remove(worst)
        dropped.append(cells[0][worst])
    return ([cells[0][i] for i in keep], [[r[i] for i in keep] for r in cells[1:]],
            [h for h in headers if h in dropped])


def terminal_width() -> int | None:
    """The width to fit output to when stdout is a terminal ($COLUMNS, else the terminal's);
    None for a pipe or a CI log, which keep whole lines."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def fitted(headers: Sequence[str], rows: Sequence[Sequence[object]], width: int | None,
           priority: Callable[[str], float]) -> str:
    """`render` within `width`: columns dropped by priority, then the last one wrapped; a
    line below names what was left out."""
    if width is None:
        return render(headers, rows)
    kept, kept_rows, dropped = fit(headers, rows, width, priority)
    text = render(kept, kept_rows, width=width)
    if dropped:
        text += "\n" + textwrap.fill(
            f"(left out to fit {width} columns: {', '.join(dropped)}; --json, --markdown or "
            "--csv have them all)", width)
    return text
