"""CSV and JSONL downloads of the decisions a filter matches, bounded in rows and in entries examined."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from audit.log import LoggedEntry

MAX_ROWS = 50_000
SCAN_BUDGET = 1_000_000  # index positions one download may examine
CSV_COLUMNS = (
    "index",
    "time",
    "verdict",
    "source",
    "operation",
    "apiVersion",
    "kind",
    "namespace",
    "name",
    "user",
    "denied_by",
    "warned_by",
    "exceptions",
    "dryRun",
    "uid",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula


def jsonl(rows: list[LoggedEntry]) -> bytes:
    """One JSON object a line: the entry with its index, as the API's /v1/entries gives it."""
    out = io.StringIO()
    for row in rows:
        out.write(json.dumps({"index": row.index, **row.entry}, ensure_ascii=False, sort_keys=True))
        out.write("\n")
    return out.getvalue().encode("utf-8")


def to_csv(rows: list[LoggedEntry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(value) for value in flat(row)])
    return out.getvalue().encode("utf-8")


def flat(row: LoggedEntry) -> list[str]:
    entry = row.entry
    resource = _map(entry.get("resource"))
    user = _map(entry.get("user"))
    results = [r for r in entry.get("results") or () if isinstance(r, dict)]
    failing = [r for r in results if r.get("outcome") in ("fail", "error")]
    return [
        str(row.index),
        str(entry.get("time", "")),
        str(entry.get("verdict", "")),
        str(entry.get("source", "")),
        str(entry.get("operation", "")),
        str(resource.get("apiVersion", "")),
        str(resource.get("kind", "")),
        str(resource.get("namespace", "")),
        str(resource.get("name", "")),
        str(user.get("username", "")),
        " ".join(sorted({str(r.get("policy", "")) for r in failing if r.get("action") == "deny"})),
        " ".join(sorted({str(r.get("policy", "")) for r in failing if r.get("action") == "warn"})),
        " ".join(str(name) for name in entry.get("exceptions") or ()),
        "true" if entry.get("dryRun") else "false",
        str(entry.get("uid", "")),
    ]


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
