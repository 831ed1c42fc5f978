"""Markdown tables: the one formatter every report, benchmark and printout uses."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] | None = None
) -> str:
    """A GitHub-flavoured Markdown table; columns marked `numeric` are right-aligned.

    Cells are written with `str`; format numbers before passing them. Without `numeric`, the
    first column is left-aligned and the others right-aligned.
    """
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"rows[{i}]: {len(row)} cells for {width} columns")
    right = list(numeric) if numeric is not None else [False] + [True] * (width - 1)
    if len(right) != width:
        raise ValueError(f"numeric: {len(right)} flags for {width} columns")
    lines = [
        "| " + " | ".join(str(h) for h in header) + " |",
        "|" + "|".join("---:" if r else "---" for r in right) + "|",
    ]
    lines.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return "\n".join(lines)
