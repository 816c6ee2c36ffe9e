"""``.policyengine.yaml``: the defaults of ``policyengine check`` kept in the repository, found upward from
the working directory (or named with ``--config-file``), merged under the command line and shown by
``--print-config``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import yaml

from policyengine import errors
from policyengine.cli import outputs
from policyengine.errors import LoadError, Problem
from policyengine.globs import PatternError, compile_pattern
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, parse_text, read_text

FILE_NAME = ".policyengine.yaml"
SCHEMA = "check-config.json"
MAX_LEVELS = 64  # directories searched upward: a deep working directory cannot make the search long
FLAG, DEFAULT = "flag", "default"
STASH = "config_file_defaults"  # where add_arguments keeps the real defaults it replaced by None


@dataclass(frozen=True)
class Key:
    """A config key: the argparse dest it sets, and how its value is read (``kind``)."""

    dest: str
    kind: str  # paths | path | bool | globs | formats | size | count


# Config key -> argparse dest. A key whose dest the parser does not have is ignored.
KEYS: dict[str, Key] = {
    "paths": Key("paths", "paths"),
    "policies": Key("policies", "paths"),
    "noDefaultPolicies": Key("no_default_policies", "bool"),
    "config": Key("config", "paths"),
    "inventory": Key("inventory", "path"),
    "exclude": Key("exclude", "globs"),
    "baseline": Key("baseline", "path"),
    "kustomize": Key("kustomize", "bool"),
    "formats": Key(outputs.DEST, "formats"),
    "strict": Key("strict", "bool"),
    "requireConfig": Key("require_config", "bool"),
    "maxInputSize": Key("max_input_size", "size"),
    "maxDocuments": Key("max_documents", "count"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The config-file flags. Call it last: it replaces the defaults of the scalar flags the file can
    set by None, so that a flag given on the command line can be told from one left out."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config-file",
        metavar="FILE",
        help=f"read the defaults of check from FILE (default: the first {FILE_NAME} found from the working "
        "directory up to the repository root)",
    )
    group.add_argument("--no-config-file", action="store_true", help=f"do not look for {FILE_NAME}")
    parser.add_argument(
        "--print-config",
        nargs="?",
        const="yaml",
        choices=("yaml", "json"),
        help="print the merged settings and where each came from (flag, file or default), then exit 0",
    )
    dests = {key.dest for key in KEYS.values()}
    stash = {
        a.dest: a.default
        for a in parser._actions  # argparse has no public way to read a default
        if a.dest in dests and a.default is not None and not isinstance(a.default, bool | list)
    }
    parser.set_defaults(**dict.fromkeys(stash), **{STASH: stash})


def apply(args: argparse.Namespace) -> int | None:
    """Merge the config file into ``args`` (flags win). Returns 0 when ``--print-config`` printed the
    settings, 2 when no PATH is given by either, else None. Raises LoadError naming the file and line of a bad config."""
    path = locate(args.config_file, args.no_config_file, os.getcwd())
    limits = InputLimits(
        max_bytes=_given_or_default(args, "max_input_size", DEFAULT_LIMITS.max_bytes),
        max_documents=_given_or_default(args, "max_documents", DEFAULT_LIMITS.max_documents),
    )
    settings = load(path, limits) if path is not None else {}
    sources = merge(args, settings, f"file:{path}")
    if args.print_config:
        print(render(args, sources, path, args.print_config), end="")
        return 0
    if not args.paths:
        print(
            "policyengine check: give at least one PATH (a file, a directory, or - for stdin), "
            f"or set paths in {FILE_NAME}",
            file=sys.stderr,
        )
        return 2
    return None


def locate(named: str | None, disabled: bool, start: str) -> str | None:
    """The config file: ``named`` (which must exist), none when ``disabled``, else the first
    ``.policyengine.yaml`` from ``start`` upward, stopping at the directory holding ``.git``."""
    if named is not None:
        if not os.path.isfile(named):
            raise LoadError([Problem(named, 1, errors.FILE_NOT_FOUND, "--config-file names no file")])
        return named
    if disabled:
        return None
    here = os.path.abspath(start)
    for _ in range(MAX_LEVELS):
        candidate = os.path.join(here, FILE_NAME)
        if os.path.isfile(candidate):
            return os.path.relpath(candidate)
        parent = os.path.dirname(here)
        if os.path.lexists(os.path.join(here, ".git")) or parent == here:
            return None  # the repository root (a .git directory, or the .git file of a worktree)
        here = parent
    return None


def load(path: str, limits: InputLimits) -> dict[str, Any]:
    """The settings of the config file at ``path``: config key -> value, paths made relative to the
    working directory. Raises LoadError with every problem, each at its line."""
    docs = parse_text(read_text(path, limits=limits), path, limits)
    if not docs:
        return {}  # an empty file sets nothing
    if len(docs) > 1:
        raise LoadError([docs[1].problem(errors.SCHEMA_INVALID, "a config file holds one YAML document")])
    doc = docs[0]
    problems: list[Problem] = []
    if isinstance(doc.data, dict):
        for key in doc.data:
            if key not in KEYS:
                known = ", ".join(KEYS)
                problems.append(
                    doc.problem(errors.SCHEMA_INVALID, f"unknown key {key!r} (known: {known})", [key])
                )
        doc = replace(doc, data={k: v for k, v in doc.data.items() if k in KEYS})
    from policyengine import schema  # JSON Schema: imported only when a config file is read

    problems += schema.validate(doc, SCHEMA)
    if problems:
        raise LoadError(problems)
    settings = {key: _read_value(doc, key, KEYS[key].kind, problems) for key in doc.data}
    if problems:
        raise LoadError(problems)
    return settings


def _read_value(doc: Document, key: str, kind: str, problems: list[Problem]) -> Any:
    value = doc.data[key]
    base = os.path.dirname(os.path.abspath(doc.file))

    def path_at(text: str, at: list[str | int]) -> str:
        return _inside(doc, base, text, at, problems)

    if kind == "paths":
        return [path_at(p, [key, i]) if p != "-" else p for i, p in enumerate(value)]
    if kind == "path":
        return path_at(value, [key])
    if kind == "formats":
        pairs: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            pairs.append(("format", item["format"]))
            if "output" in item:
                out = item["output"]
                pairs.append(("output", out if out == outputs.STDOUT else path_at(out, [key, i, "output"])))
        return pairs
    if kind == "globs":
        for i, pattern in enumerate(value):
            _check(doc, [key, i], problems, partial(compile_pattern, pattern), PatternError)
        return list(value)
    if kind == "size":
        from policyengine.cli.check import parse_size  # check imports this module: import at use

        return _check(doc, [key], problems, partial(parse_size, str(value)), argparse.ArgumentTypeError)
    return value  # bool, count: the schema has checked them


def _check(
    doc: Document,
    at: list[str | int],
    problems: list[Problem],
    read: Callable[[], Any],
    error: type[Exception],
) -> Any:
    try:
        return read()
    except error as err:
        problems.append(doc.problem(errors.INVALID_VALUE, str(err), at))
        return None


def _inside(doc: Document, base: str, text: str, at: list[str | int], problems: list[Problem]) -> str:
    """``text`` resolved against the file's directory, relative to the working directory. A path that
    leaves that directory (absolute, ``..``, or through a link) is refused: a config file committed to a
    repository must not make the gate read or write files elsewhere on the machine that runs it."""
    full = os.path.normpath(os.path.join(base, text))
    real_base = os.path.realpath(base)
    real = os.path.realpath(full)
    if os.path.isabs(text) or os.path.commonpath([real, real_base]) != real_base:
        message = f"{text!r} is outside the directory of the config file; name it with a flag instead"
        problems.append(doc.problem(errors.INVALID_VALUE, message, at))
    return os.path.relpath(full)


def merge(args: argparse.Namespace, settings: Mapping[str, Any], origin: str) -> dict[str, str]:
    """Set into ``args`` each setting whose flag was not given, and the real default of each left out.
    Returns config key -> where its value came from. Repeatable flags given replace the file's list."""
    stash: dict[str, Any] = getattr(args, STASH, {})
    sources: dict[str, str] = {}
    for key, spec in KEYS.items():
        if not hasattr(args, spec.dest):
            continue  # a flag this parser does not have
        if _given(getattr(args, spec.dest)):
            sources[key] = FLAG
        elif key in settings:
            setattr(args, spec.dest, settings[key])
            sources[key] = origin
        else:
            sources[key] = DEFAULT
        if getattr(args, spec.dest) is None and spec.dest in stash:
            setattr(args, spec.dest, stash[spec.dest])
    return sources


def _given(value: Any) -> bool:
    # Left out, a flag holds None (scalars), [] (repeatable flags, formats) or False (switches): no
    # flag can give those on the command line, so they mean "not given".
    return value is not None and value is not False and value != []


def _given_or_default(args: argparse.Namespace, dest: str, default: int) -> int:
    value = getattr(args, dest, None)
    return int(value) if isinstance(value, int) else default


def render(args: argparse.Namespace, sources: Mapping[str, str], path: str | None, style: str) -> str:
    """The merged settings, each with its value and its source, as YAML or JSON."""
    settings: dict[str, Any] = {}
    for key, source in sources.items():
        value = getattr(args, KEYS[key].dest)
        if KEYS[key].kind == "formats":
            specs = outputs.plan(value)
            value = [{"format": s.format, **({"output": s.output} if s.output else {})} for s in specs]
        settings[key] = {"value": value, "source": source}
    document = {"configFile": path, "settings": settings}
    if style == "json":
        return json.dumps(document, indent=2) + "\n"
    return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
