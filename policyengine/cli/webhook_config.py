"""``policyengine webhook-config``: print the ValidatingWebhookConfiguration for the loaded policies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from policyengine.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "webhook-config",
        help="print the ValidatingWebhookConfiguration for the webhook",
        description="Print a v1 ValidatingWebhookConfiguration whose rules cover what the loaded policies "
        "match; system namespaces and the webhook's own namespace are excluded.",
    )
    p.add_argument("--service", required=True, metavar="NAMESPACE/NAME", help="the webhook's Service")
    p.add_argument("--ca-bundle", required=True, metavar="FILE", help="the CA certificate (PEM), e.g. ca.crt")
    p.add_argument("--fail-open", action="store_true", help="failurePolicy: Ignore (default: Fail)")
    p.add_argument(
        "--policies", action="append", default=[], metavar="PATH", help="more policies (repeatable)"
    )
    p.add_argument("--no-default-policies", action="store_true", help="do not load the bundled packs")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="GovernanceConfig file(s)")
    p.add_argument("--port", type=int, default=443, help="the Service port (default 443)")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policyengine.policyset import load_policy_set
    from webhook.configuration import webhook_configuration

    namespace, _, name = args.service.partition("/")
    if not namespace or not name or "/" in name:
        raise UsageError(f"--service takes NAMESPACE/NAME, not {args.service!r}")
    try:
        ca = Path(args.ca_bundle).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read --ca-bundle {args.ca_bundle}: {err.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in ca:
        raise UsageError(f"--ca-bundle {args.ca_bundle} is not a PEM certificate")
    policy_set = load_policy_set(
        args.policies, config_paths=args.config, include_bundled=not args.no_default_policies
    )
    doc = webhook_configuration(
        policy_set.policies,
        service_namespace=namespace,
        service_name=name,
        ca_bundle=ca,
        fail_open=args.fail_open,
        port=args.port,
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
    return 0
