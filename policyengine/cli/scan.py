"""``policyengine scan``: what in the cluster violates the policy set now (a background scan, as
Gatekeeper's audit and Kyverno's background scans do), from an inventory file or the API server."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from policyengine.cel import BACKENDS
from policyengine.cli import auditing, outputs
from policyengine.cli.check import CEL_BACKEND_ENV, cel_compiler, parse_size, positive_int
from policyengine.cli.policyopts import add_policy_options, load_policies
from policyengine.errors import LoadError, UsageError
from policyengine.inventory import from_documents
from policyengine.loader import DEFAULT_LIMITS, InputLimits, format_size, read_documents
from policyengine.reports import openreports
from policyengine.scan import background_engine, documents_of, scan, select_kinds

FORMATS = ("text", "json", "sarif", "junit", "openreports")
DEFAULT_MAX_OBJECTS = 100_000


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "scan",
        help="check the objects already in a cluster (or an inventory file) against the policies",
        description="Judge existing objects as the CREATE requests the API server would send for them "
        "(no user, no old object), with the policies a background scan may run (not those annotated "
        'policyengine.io/background: "false"). Exit 0: no deny violation; 1: at least one (or a warning '
        "with --strict); 2: usage, input, policy or cluster error.",
        epilog=outputs.PAIRING_HELP,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--inventory", metavar="FILE", help="the objects, e.g. kubectl get ... -A -o yaml")
    source.add_argument("--kube", action="store_true", help="list the objects from the cluster (read-only)")
    p.add_argument(
        "--kubeconfig", metavar="FILE", help="with --kube outside a cluster (default ~/.kube/config)"
    )
    add_policy_options(p, metavar="DIR")
    p.add_argument(
        "--kinds",
        action="append",
        default=[],
        metavar="KIND[,KIND]",
        help="scan only these kinds (TrainJob, inferenceservices, rayclusters.ray.io; repeatable)",
    )
    p.add_argument(
        "--max-objects",
        type=positive_int,
        default=DEFAULT_MAX_OBJECTS,
        metavar="N",
        help=f"refuse to read more objects than this (default {DEFAULT_MAX_OBJECTS})",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="with --kube, write the OpenReports to the cluster (create or update; delete the reports of "
        "namespaces with no results any more)",
    )
    p.add_argument(
        "--max-input-size",
        type=parse_size,
        default=DEFAULT_LIMITS.max_bytes,
        metavar="SIZE",
        help=f"refuse an input file larger than this (default {format_size(DEFAULT_LIMITS.max_bytes)})",
    )
    outputs.add_arguments(p, FORMATS)
    p.add_argument("--strict", action="store_true", help="warnings fail the scan too")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument(
        "--cel-backend",
        choices=BACKENDS,
        default=None,
        help=f"CEL evaluator (default: ${CEL_BACKEND_ENV} or fast; reference is cel-python's)",
    )
    auditing.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    specs = outputs.plan(getattr(args, outputs.DEST))
    if args.apply and not args.kube:
        raise UsageError("--apply needs --kube (the reports are written to the cluster)")
    compiler = cel_compiler(args.cel_backend)
    if compiler is None:
        raise UsageError(f"${CEL_BACKEND_ENV} must be one of {', '.join(BACKENDS)}")
    limits = InputLimits(max_bytes=args.max_input_size, max_documents=DEFAULT_LIMITS.max_documents)
    kinds = [k.strip() for group in args.kinds for k in group.split(",") if k.strip()]
    reports = [s for s in specs if s.format != "openreports"]
    try:
        policy_set = load_policies(args, compiler=compiler, limits=limits)
        engine = background_engine(policy_set)
        rest = None
        if args.kube:
            rest, objects = _read_cluster(args, policy_set.policies, kinds)
            docs = documents_of(objects)
        else:
            docs = read_documents([args.inventory], limits=limits)
    except LoadError as err:
        outputs.write_problem_reports(err.problems, reports)
        raise
    inventory = from_documents(d.data for d in docs)
    docs = select_kinds(docs, kinds)
    if len(docs) > args.max_objects:
        raise UsageError(f"{len(docs)} objects to scan, over --max-objects {args.max_objects}")
    now = datetime.now(UTC)
    audit_log = auditing.open_log(args)
    report = scan(engine, docs, inventory=inventory, now=now)
    if audit_log is not None:
        try:
            auditing.record(audit_log, (c.decision for c in report.checked), source="background")
        finally:
            audit_log.close()
    outputs.write_reports(report, reports, strict=args.strict, color=args.color)
    built = openreports.build_reports((c.decision for c in report.checked), now=now)
    for spec in specs:
        if spec.format == "openreports":
            _write(openreports.render(built), spec.output)
    if rest is not None and args.apply:
        _apply(rest, built)
    return report.exit_code(strict=args.strict)


def _read_cluster(args: argparse.Namespace, policies: Any, kinds: list[str]) -> tuple[Any, list[Any]]:
    from webhook.cluster import api_client_from_config
    from webhook.kubescan import KubeRest, ScanSourceError, read_cluster

    try:
        rest = KubeRest(api_client_from_config(args.kubeconfig))
        read = read_cluster(rest, policies, kinds=kinds, max_objects=args.max_objects)
    except ScanSourceError as err:
        raise UsageError(f"scan --kube: {err}") from None
    except Exception as err:  # no kubeconfig, the API server unreachable: a usage problem, not a verdict
        raise UsageError(f"scan --kube: cannot read the cluster: {err}") from None
    for unread in read.unread:
        print(f"policyengine scan: warning: not scanned: {unread}", file=sys.stderr)
    return rest, read.objects


def _apply(rest: Any, built: list[dict[str, Any]]) -> None:
    from webhook.kubescan import ScanSourceError, apply_reports

    try:
        applied = apply_reports(rest, built)
    except ScanSourceError as err:
        raise UsageError(f"scan --apply: {err}") from None
    print(
        f"policyengine scan: reports created {len(applied.created)}, updated {len(applied.updated)}, "
        f"deleted {len(applied.deleted)}",
        file=sys.stderr,
    )


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        raise UsageError(f"cannot write --output {output}: {err.strerror or err}") from None
