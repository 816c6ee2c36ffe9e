"""``policyengine init``: a starter GovernanceConfig guessed from a repository's manifests (and/or an
inventory), and the ``.policyengine.yaml`` that makes ``check`` use it."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from policyengine import schema, starter, startercfg
from policyengine.cli import check, configfile
from policyengine.errors import UsageError
from policyengine.loader import DEFAULT_LIMITS, InputLimits, parse_text

STARTER_FILE = "governance-config.yaml"
MAX_LISTED = 40  # review lines printed; the file marks them all


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="write a starter GovernanceConfig and .policyengine.yaml from a repository's manifests",
        description=f"Read the manifests under PATH (as check reads them) and/or --inventory, and write a "
        f"commented starter GovernanceConfig ({STARTER_FILE}: teams and a GPU quota guess from namespace "
        "labels and workloads, residency zones and regions, model sources and data locations by prefix) "
        f"and a {configfile.FILE_NAME} that names it, unless one exists. Every guessed value is marked "
        "`# review`. Exit 0: written; 2: usage or input error, or a file exists (see --force).",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (recursive) to learn from")
    p.add_argument("--inventory", metavar="FILE", help="cluster objects to learn from: namespaces, pods")
    p.add_argument("--output-dir", default=".", metavar="DIR", help="where to write (default: .)")
    p.add_argument(
        "--force",
        action="store_true",
        help=f"overwrite an existing {STARTER_FILE} ({configfile.FILE_NAME} is never overwritten)",
    )
    p.add_argument(
        "--exclude", action="append", default=[], type=check.exclude_pattern, metavar="GLOB", help="as check"
    )
    p.add_argument("--kustomize", action="store_true", help="render kustomizations, as check --kustomize")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.paths and args.inventory is None:
        raise UsageError("init: give at least one PATH or --inventory to learn from")
    out_dir = args.output_dir
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"init: --output-dir {out_dir} is not a directory")
    target = os.path.join(out_dir, STARTER_FILE)
    if os.path.lexists(target) and not args.force:
        raise UsageError(f"init: {target} exists; pass --force to overwrite it")
    limits = DEFAULT_LIMITS
    docs = check.start_reading(args.paths, sys.stdin, limits, args.exclude, args.kustomize).result().documents
    inventory = check.load_inventory(args.inventory, limits)
    facts = starter.gather(docs, inventory, args.inventory or "")
    read = [*args.paths, *([f"--inventory {args.inventory}"] if args.inventory else [])]
    text = startercfg.render(facts, read)
    _validate(text, target, limits)
    os.makedirs(out_dir, exist_ok=True)
    _write(target, text)
    print(f"wrote {os.path.relpath(target)}")
    notes = _config_file(args, out_dir)
    _print_review(text, notes)
    return 0


def _validate(text: str, target: str, limits: InputLimits) -> None:
    """The starter must be a GovernanceConfig check loads: a schema problem here is a bug, not input."""
    problems = [
        p for d in parse_text(text, target, limits) for p in schema.validate(d, "governance-config.json")
    ]
    if problems:
        raise RuntimeError(f"the starter configuration is not valid: {problems[0].render()}")


def _write(path: str, text: str) -> None:
    """Write through a temporary file, so an interrupted run leaves no half-written config."""
    # mkstemp creates a new file (never follows a link someone left in the folder).
    handle, temporary = tempfile.mkstemp(prefix=".init-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _config_file(args: argparse.Namespace, out_dir: str) -> list[str]:
    """Write ``.policyengine.yaml`` naming the starter (and the paths and inventory read, when inside
    ``out_dir``: a config file may name only those), unless one exists. Returns notes for the user."""
    path = os.path.join(out_dir, configfile.FILE_NAME)
    if os.path.lexists(path):
        return [
            f"kept {os.path.relpath(path)}: add {STARTER_FILE} to its `config` list if it does not name it"
        ]
    notes: list[str] = []
    settings = startercfg.Node()
    inside = _inside(args.paths, out_dir, notes)
    if inside:
        paths = settings.put("paths", startercfg.Node.seq())
        for item in inside:
            paths.add(item)
    settings.put("config", startercfg.Node.seq()).add(STARTER_FILE)
    if args.inventory and (inventory := _inside([args.inventory], out_dir, notes)):
        settings.put("inventory", inventory[0])
    head = f"# Settings of `policyengine check` here, written by `policyengine init`; see {configfile.FILE_NAME} in README."
    _write(path, "\n".join([head, *startercfg.emit(settings)]) + "\n")
    print(f"wrote {os.path.relpath(path)}")
    return notes


def _inside(paths: Sequence[str], out_dir: str, notes: list[str]) -> list[str]:
    base = os.path.realpath(out_dir)
    out: list[str] = []
    for raw in paths:
        if raw == "-":
            continue
        real = os.path.realpath(raw)
        if os.path.commonpath([real, base]) == base:
            out.append(os.path.relpath(real, base))
        else:
            shown = startercfg.comment_text(raw)
            notes.append(
                f"{shown} is outside {startercfg.comment_text(out_dir)}: give it to check as an argument"
            )
    return out


def _print_review(text: str, notes: list[str]) -> None:
    """What needs review: each line of the file marked so, and the notes."""
    marked = [line.strip() for line in text.splitlines() if "# review" in line or line.startswith("# Note:")]
    for line in marked[:MAX_LISTED]:
        print(f"  {line}")
    if len(marked) > MAX_LISTED:
        print(f"  ... and {len(marked) - MAX_LISTED} more lines marked `# review` in {STARTER_FILE}")
    for note in notes:
        print(f"note: {note}")
    print(f"{len(marked)} value(s) to review, then run: policyengine check --config {STARTER_FILE} PATH")
