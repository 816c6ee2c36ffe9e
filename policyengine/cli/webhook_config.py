"""``policyengine webhook-config``: print the ValidatingWebhookConfiguration for the loaded policies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from policyengine.cli.admissionconfig import add_admission_arguments
from policyengine.cli.generate import add_generation_options
from policyengine.cli.policyopts import add_policy_options, load_policies
from policyengine.errors import UsageError

# The webhook's defaults, repeated here so `--help` needs no import of the webhook package.
DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT = 5, 1, 10
FAILURE_POLICIES = ("ByKind", "Fail", "Ignore")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "webhook-config",
        help="print the ValidatingWebhookConfiguration for the webhook",
        description="Print a v1 ValidatingWebhookConfiguration whose rules cover what the loaded policies "
        "match (a policy matching every kind: the workload kinds of --kinds); system namespaces, the "
        "webhook's own namespace and namespaces labelled policyengine.io/exempt=true are excluded.",
    )
    p.add_argument("--service", required=True, metavar="NAMESPACE/NAME", help="the webhook's Service")
    p.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="the CA certificate (PEM), e.g. ca.crt (required unless --admission-config)",
    )
    p.add_argument(
        "--failure-policy",
        dest="webhook_failure_policy",  # not the policies' CEL failurePolicy (policyengine.results)
        choices=FAILURE_POLICIES,
        help="failurePolicy of the rules of policies without a policyengine.io/failure-policy annotation: "
        "ByKind (default: Fail for the AI workload kinds, Ignore for the rest), Fail or Ignore",
    )
    p.add_argument("--fail-open", action="store_true", help="failurePolicy: Ignore for every entry")
    p.add_argument(
        "--timeout-seconds",
        type=int,
        default=DEFAULT_TIMEOUT,
        metavar="N",
        help=f"timeoutSeconds of every entry, {MIN_TIMEOUT}..{MAX_TIMEOUT} (default {DEFAULT_TIMEOUT})",
    )
    p.add_argument(
        "--kinds",
        action="append",
        default=[],
        metavar="RESOURCE.GROUP,...",
        help="what a policy matching every kind is sent (repeatable, comma-separated): e.g. "
        "rayclusters.ray.io, pods (core group), default (the built-in workload kinds)",
    )
    add_policy_options(p)
    p.add_argument("--port", type=int, default=443, help="the Service port (default 443)")
    p.add_argument(
        "--format",
        choices=("yaml", "json", "markdown"),
        default="yaml",
        help="markdown: the blast-radius table (which requests reach the webhook, with what failurePolicy)",
    )
    p.add_argument(
        "--exclude-generated",
        action="store_true",
        help="leave off the policies `generate vap` (with the same --kubernetes-version and --static) "
        "writes as ValidatingAdmissionPolicies: the API server enforces those itself",
    )
    add_generation_options(p)
    add_admission_arguments(p)
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration's options from the flags; a bad value is a usage error naming its flag."""
    from webhook.scope import WORKLOAD_RESOURCES, KindsError, parse_kinds

    if args.fail_open and args.webhook_failure_policy not in (None, "Ignore"):
        raise UsageError(
            f"--fail-open and --failure-policy {args.webhook_failure_policy} contradict each other"
        )
    if not MIN_TIMEOUT <= args.timeout_seconds <= MAX_TIMEOUT:
        raise UsageError(
            f"--timeout-seconds must be {MIN_TIMEOUT}..{MAX_TIMEOUT} (a slow webhook holds every request "
            f"it is sent), not {args.timeout_seconds}"
        )
    try:
        kinds = parse_kinds(args.kinds) if args.kinds else WORKLOAD_RESOURCES
    except KindsError as err:
        raise UsageError(str(err)) from None
    return {
        "fail_open": args.fail_open,
        "failure_policy": args.webhook_failure_policy or "ByKind",
        "kinds": kinds,
        "timeout_seconds": args.timeout_seconds,
    }


def run(args: argparse.Namespace) -> int:
    from webhook.blastradius import blast_radius
    from webhook.configuration import webhook_configuration

    namespace, _, name = args.service.partition("/")
    if not namespace or not name or "/" in name:
        raise UsageError(f"--service takes NAMESPACE/NAME, not {args.service!r}")
    if args.admission_config is not None:
        return _admission_config(args, namespace, name)
    if args.ca_bundle is None:
        raise UsageError(
            "--ca-bundle is required (the CA the API server trusts the webhook's certificate by)"
        )
    options = _options(args)
    try:
        ca = Path(args.ca_bundle).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read --ca-bundle {args.ca_bundle}: {err.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in ca:
        raise UsageError(f"--ca-bundle {args.ca_bundle} is not a PEM certificate")
    policy_set = load_policies(args)
    policies = policy_set.policies
    if args.exclude_generated:
        from policyengine.cli.generate import generation
        from policyengine.vapgen import webhook_remainder

        generated = generation(args, policy_set, namespace=namespace).names
        # A generated policy leaves the webhook but for the scale requests only the webhook can judge.
        kept = (p if p.name not in generated else webhook_remainder(p) for p in policies)
        policies = tuple(p for p in kept if p is not None)
    try:
        doc = webhook_configuration(
            policies,
            service_namespace=namespace,
            service_name=name,
            ca_bundle=ca,
            port=args.port,
            config=policy_set.config,  # its spec.gpu.resources are accelerators the conditions count
            **options,
        )
    except ValueError as err:  # more accelerator names than a condition holds
        raise UsageError(f"--config: {err}") from None
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(blast_radius(doc))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0


def _admission_config(args: argparse.Namespace, namespace: str, name: str) -> int:
    from policyengine.cli.admissionconfig import admission_files, write_admission_files

    files = admission_files(
        namespace=namespace,
        name=name,
        port=args.port,
        node_dir=args.admission_dir,
        token_file=args.apiserver_token_file,
    )
    for path in write_admission_files(args.admission_config, files):
        sys.stdout.write(f"wrote {path}\n")
    return 0
