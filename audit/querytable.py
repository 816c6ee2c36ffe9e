"""``audit query``'s output: the matching entries as a table, CSV, JSON or JSON Lines (by default only
their failing and excepted results)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from audit.log import LoggedEntry

# What an auditor reads first: the results that decided or were waived; passes and skips are noise.
SHOWN_OUTCOMES = frozenset({"fail", "error", "excepted"})


def render(rows: Sequence[LoggedEntry], fmt: str, *, all_results: bool = False) -> str:
    records = [{"index": row.index, **row.entry} for row in rows]
    if not all_results:
        records = [{**r, "results": _shown(r.get("results"))} for r in records]
    if fmt == "json":
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    header = [
        "index",
        "time",
        "source",
        "verdict",
        "operation",
        "kind",
        "namespace",
        "name",
        "user",
        "policies",
    ]
    table = [[str(_flat(r).get(column, "")) for column in header] for r in records]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
        return out.getvalue()
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(header)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *table]
    ]
    return "\n".join(lines) + "\n"


def _shown(results: Any) -> Any:
    """The failing and excepted results, in logged order; a malformed list is shown as logged."""
    if not isinstance(results, list):
        return results
    return [r for r in results if not isinstance(r, dict) or r.get("outcome") in SHOWN_OUTCOMES]


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    resource = record.get("resource") or {}
    user = record.get("user") or {}
    failing = [
        f"{r.get('policy')}:{r.get('outcome')}" for r in record.get("results") or [] if isinstance(r, dict)
    ]
    return {
        **record,
        "kind": resource.get("kind", ""),
        "namespace": resource.get("namespace", ""),
        "name": resource.get("name", ""),
        "user": user.get("username", ""),
        "policies": " ".join(failing),
    }
