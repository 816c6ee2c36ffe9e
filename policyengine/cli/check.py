"""``policyengine check``: the CI gate (SPEC §8).

This module imports only what reading the manifests needs; the engine, the CEL stack and the policy set
are imported once the reading has begun (a large tree is read by workers meanwhile)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from policyengine import intake
from policyengine.cel import BACKENDS, get_backend
from policyengine.cli import auditing, baselines, configfile, freeze_imported, outputs
from policyengine.cli.policyopts import add_policy_options, load_policies
from policyengine.errors import LoadError, Problem
from policyengine.globs import Excludes, PatternError, compile_pattern
from policyengine.intake import Manifests
from policyengine.loader import DEFAULT_LIMITS, Document, InputLimits, format_size, read_documents
from policyengine.readahead import MIN_PARALLEL, default_jobs

if TYPE_CHECKING:
    from policyengine.engine import Engine
    from policyengine.expressions import Compiler
    from policyengine.gate import CheckReport
    from policyengine.model import Inventory
    from policyengine.policyset import PolicySet


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check manifests against the policies, as admission would",
        description="Check Kubernetes manifests against the policies with the same verdicts as admission. "
        "Exit 0: no deny violation; 1: at least one deny violation (or a warning with --strict); "
        "2: usage, input or policy error.",
        epilog=outputs.PAIRING_HELP,
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, directories (recursive) or - for stdin")
    add_policy_options(p, metavar="DIR")
    p.add_argument("--inventory", metavar="FILE", help="cluster objects: namespaces, pods, params")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        type=exclude_pattern,
        metavar="GLOB",
        help="leave out paths matching this gitignore-style pattern, relative to each directory walked "
        "(repeatable; ** spans directories, a trailing / matches directories only)",
    )
    p.add_argument(
        "--kustomize",
        action="store_true",
        help="render every kustomization a directory walk meets with kubectl kustomize, instead of reading "
        "its files raw (a directory named that holds a kustomization file is always rendered)",
    )
    p.add_argument(
        "--max-input-size",
        type=parse_size,
        default=DEFAULT_LIMITS.max_bytes,
        metavar="SIZE",
        help="refuse any one input (manifest, policy, config or inventory file, or stdin) larger than "
        f"this, e.g. 64MiB (default {format_size(DEFAULT_LIMITS.max_bytes)})",
    )
    p.add_argument(
        "--max-documents",
        type=positive_int,
        default=DEFAULT_LIMITS.max_documents,
        metavar="N",
        help=f"refuse a file of more YAML documents than this (default {DEFAULT_LIMITS.max_documents})",
    )
    outputs.add_arguments(p)
    baselines.add_arguments(p)
    _add_verdict_flags(p)
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--verbose", action="store_true", help="also say what loaded but does nothing")
    _add_evaluation_flags(p)
    auditing.add_arguments(p)
    configfile.add_arguments(p)  # last: it reads the defaults of the flags above
    p.set_defaults(func=run)


def _add_evaluation_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cel-backend",
        choices=BACKENDS,
        default=None,
        help=f"CEL evaluator (default: ${CEL_BACKEND_ENV} or fast; reference is cel-python's)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="decide in N processes (default: the number of cores); output and exit code are those of "
        f"one process, and a set of fewer than {MIN_PARALLEL} resources is decided in this one",
    )


def _add_verdict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true", help="warnings fail the check too")
    p.add_argument(
        "--require-config",
        action="store_true",
        help="a policy whose organisation facts no GovernanceConfig sets (reported as not-configured) is "
        "an error (exit 2) instead of a notice",
    )


CEL_BACKEND_ENV = "POLICYENGINE_CEL_BACKEND"
_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1 << 10, "M": 1000**2, "MB": 1000**2, "MIB": 1 << 20}
_UNITS |= {"G": 1000**3, "GB": 1000**3, "GIB": 1 << 30}


def parse_size(text: str) -> int:
    """'64MiB', '50MB', '1048576' -> bytes (argparse type: a bad value is a usage error, exit 2)."""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 64MiB, 50MB or a number of bytes)")
    return int(match.group(1)) * _UNITS[unit]


def positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def backend_name(choice: str | None) -> str:
    """--cel-backend, else $POLICYENGINE_CEL_BACKEND, else fast (maybe no backend's name)."""
    return choice or os.environ.get(CEL_BACKEND_ENV) or "fast"


def cel_compiler(choice: str | None) -> Compiler | None:
    """The compiler for --cel-backend, else $POLICYENGINE_CEL_BACKEND; None when that names no backend."""
    name = backend_name(choice)
    if name not in BACKENDS:
        return None
    from policyengine.expressions import Compiler

    return Compiler(get_backend(name))


def load_inventory(path: str | None, limits: InputLimits = DEFAULT_LIMITS) -> Inventory | None:
    if path is None:
        return None
    from policyengine.inventory import from_documents

    return from_documents([d.data for d in read_documents([path], limits=limits)])


def exclude_pattern(text: str) -> str:
    """argparse type for --exclude: a pattern that does not compile is a usage error (exit 2)."""
    try:
        compile_pattern(text)
    except PatternError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def start_reading(
    paths: list[str],
    stdin: IO[str],
    limits: InputLimits = DEFAULT_LIMITS,
    excludes: Sequence[str] = (),
    kustomize: bool = False,
    park: bool = False,
    jobs: int = 1,
) -> intake.ManifestReading:
    """The manifests being read (``result`` gives them): a large tree by ``jobs`` worker processes."""
    return intake.start_reading(
        paths, stdin, limits, excludes=Excludes.of(excludes), kustomize=kustomize, park=park, jobs=jobs
    )


def attestation_notes(config: Any, now: datetime) -> list[str]:
    """What --verbose says about the attestation store at ``now``: weakened trust settings, files it
    could not read, bundles that do not verify, and signatures whose certificates expire within 30 days."""
    from policyengine.provenance import EXPIRY_NOTICE
    from policyengine.trust import load_attestation_store

    store = load_attestation_store(config)  # read again only under --verbose; it loaded once already
    notes = [f"attestation store: {problem}" for problem in store.problems]
    judged = store.at(now)
    notes += [
        f"attestation store: {name} does not verify: {verdict.reason}"
        for name, verdict in judged
        if not verdict.verified
    ]
    notes += [
        f"attestation store: {name} expires soon: {verdict.window.not_after_cert} expires at "
        f"{verdict.window.not_after.isoformat()}"
        for name, verdict in store.expiring(now, EXPIRY_NOTICE)
        if verdict.window is not None
    ]
    return notes


def input_notes(manifests: Manifests) -> list[str]:
    """What --verbose says about the inputs: each file skipped, with why, and each kustomization rendered."""
    notes = [f"skipped {s.path}: {s.reason}" for s in manifests.skipped if s.kind == "file"]
    return notes + [f"rendered {k} with kubectl kustomize" for k in manifests.kustomizations]


def print_notes(policy_set: PolicySet, manifests: Manifests, now: datetime) -> None:
    """What --verbose adds on stderr: what loaded but does nothing, the accelerator list in force, the
    attestation store, the inputs."""
    from policyengine.workloads import accelerators

    notes = [*policy_set.notes, accelerators.list_in_force(policy_set.config)]
    for note in [*notes, *attestation_notes(policy_set.config, now), *input_notes(manifests)]:
        print(f"note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if (early_exit := configfile.apply(args)) is not None:
        return early_exit  # --print-config, or no PATH from the flags or the file
    reports = outputs.plan(getattr(args, outputs.DEST))
    if backend_name(args.cel_backend) not in BACKENDS:
        print(f"policyengine check: ${CEL_BACKEND_ENV} must be one of {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    try:
        policy_set, inventory, known, manifests, engine = _read_inputs(args)
        freeze_imported()  # the engine, the policy set and their modules live as long as this run
    except LoadError as err:
        # Machine-readable reports still get written, saying why nothing was evaluated (exit 2).
        outputs.write_problem_reports(err.problems, reports)
        raise

    from policyengine.trust import trust_warnings

    now = datetime.now(UTC)
    for warning in trust_warnings(policy_set.config):
        print(f"policyengine check: warning: {warning}", file=sys.stderr)
    if args.verbose:
        print_notes(policy_set, manifests, now)
    jobs = args.jobs or default_jobs()
    report = check_documents(
        engine,
        manifests.documents,
        inventory=inventory,
        now=now,
        skipped_files=manifests.skipped,
        jobs=jobs,
        compact=not args.audit_log,  # the audit log records each request's object
    )
    audit_log = auditing.open_log(args)  # after the workers are forked: its writer is a thread
    if audit_log is not None:
        try:
            auditing.record_ci_run(audit_log, (c.decision for c in report.checked))
        finally:
            audit_log.close()
    report = baselines.judge(report, args, known)
    outputs.write_reports(report, reports, strict=args.strict, color=args.color)
    return report.exit_code(strict=args.strict)


def check_documents(engine: Engine, docs: Sequence[Document], **how: Any) -> CheckReport:
    """``policyengine.gate.check_documents``, imported with the engine, after the reading has begun."""
    from policyengine.gate import check_documents as check

    return check(engine, docs, **how)


def _read_inputs(
    args: argparse.Namespace,
) -> tuple[PolicySet, Inventory | None, Any, Manifests, Engine]:
    """Policies, inventory, baseline and manifests, every problem of all four gathered before raising;
    and the engine, built while workers may still be reading (a problem it raises comes after theirs)."""
    problems: list[Problem] = []
    policy_set = manifests = inventory = None
    engine: Engine | LoadError | None = None
    known: Any = None
    limits = InputLimits(max_bytes=args.max_input_size, max_documents=args.max_documents)
    reading: intake.ManifestReading | None = None
    read_problems: list[Problem] = []
    try:
        # Without an audit log (which records each request's object) the objects wait as their text.
        park = not args.audit_log
        # A large tree is read by workers while this process compiles the policies.
        jobs = args.jobs or default_jobs()
        reading = start_reading(args.paths, sys.stdin, limits, args.exclude, args.kustomize, park, jobs)
    except LoadError as err:
        read_problems = list(err.problems)
    try:
        compiler = cel_compiler(args.cel_backend)  # the engine and the CEL stack are imported here
        assert compiler is not None  # run() checked the backend's name
        freeze_imported()
        policy_set, inventory = _policies_and_inventory(args, compiler, limits, problems)
        known = baselines.load(args, limits, problems)
        problems.extend(read_problems)
        if policy_set is not None and not problems:
            engine = _engine(policy_set)
        if reading is not None:
            manifests = _result(reading, problems)
    finally:
        if reading is not None:
            reading.close()  # its workers stopped, also when something above raised
    if problems or policy_set is None or manifests is None:
        raise LoadError(intake.in_order(problems))  # policy, config and manifest problems, by file
    if isinstance(engine, LoadError):
        raise engine
    assert engine is not None  # built above: there was no problem
    return policy_set, inventory, known, manifests, engine


def _engine(policy_set: PolicySet) -> Engine | LoadError:
    """The engine of ``policy_set``, with the module that decides the manifests imported; or the
    problem building it raised (reported only when the inputs have none)."""
    from policyengine import gate  # noqa: F401  (imported here, while the manifests may still be read)
    from policyengine.engine import Engine

    try:
        return Engine(policy_set)
    except LoadError as err:
        return err


def _result(reading: intake.ManifestReading, problems: list[Problem]) -> Manifests | None:
    try:
        return reading.result()
    except LoadError as err:
        problems.extend(err.problems)
        return None


def _policies_and_inventory(
    args: argparse.Namespace, compiler: Compiler, limits: InputLimits, problems: list[Problem]
) -> tuple[PolicySet | None, Inventory | None]:
    policy_set = inventory = None
    try:
        policy_set = load_policies(args, compiler=compiler, limits=limits)
    except LoadError as err:
        problems.extend(err.problems)
    if policy_set is not None and args.require_config:
        from policyengine import requirements

        problems.extend(requirements.problems(policy_set.policies, policy_set.unconfigured))
    try:
        inventory = load_inventory(args.inventory, limits)
    except LoadError as err:
        problems.extend(err.problems)
    return policy_set, inventory
