"""``policyengine generate vap``: the loaded policies the API server can run itself, as
ValidatingAdmissionPolicies and bindings, and the reason each other policy stays on the webhook."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyengine.cli.policyopts import add_policy_options, load_policies
from policyengine.errors import UsageError

if TYPE_CHECKING:
    from policyengine.policyset import PolicySet
    from policyengine.vapgen import Generation

DEFAULT_VERSION = "1.30"  # the oldest targeted: what it writes runs on every later version too
DEFAULT_NAMESPACE = "policyengine"  # deploy/'s namespace for the webhook


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """The options that choose what is generated: shared with ``webhook-config --exclude-generated``."""
    p.add_argument(
        "--kubernetes-version",
        default=DEFAULT_VERSION,
        metavar="1.N",
        help=f"the oldest kube-apiserver that runs them, 1.30..1.37 (default {DEFAULT_VERSION}): it decides "
        "which CEL libraries they may call",
    )
    p.add_argument(
        "--static",
        action="store_true",
        help="for manifest-based admission control (Kubernetes 1.36+, staticManifestsDir): names ending "
        ".static.k8s.io, no paramKind (params written into the expressions, or the policy stays on the webhook)",
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="generate in-apiserver admission policies from the loaded policies",
        description="Generate what the API server can enforce itself from the loaded policies.",
    )
    kinds = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    vap = kinds.add_parser(
        "vap",
        help="ValidatingAdmissionPolicies + bindings for the policies the API server can run",
        description="Write a ValidatingAdmissionPolicy and binding (+ param objects) for every loaded policy "
        "whose expressions need only what kube-apiserver gives one at --kubernetes-version; every other "
        "policy is listed, with the reason, in the comment at the top of the output and stays on the "
        "webhook. webhook-config --exclude-generated (same options) leaves the generated ones off it.",
    )
    add_generation_options(vap)
    add_policy_options(vap)
    vap.add_argument(
        "--webhook-namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NAMESPACE",
        help="the webhook's namespace: the bindings leave out it, the system namespaces and namespaces "
        f"labelled policyengine.io/exempt=true, as the webhook configuration does (default {DEFAULT_NAMESPACE})",
    )
    vap.add_argument(
        "--protect",
        action="store_true",
        help="add policyengine-protect: UPDATE/DELETE of the webhook's own Deployment, Service, TLS Secret and "
        "ConfigMaps (with --static also its webhook configuration and these policies) only by --protect-allow",
    )
    vap.add_argument(
        "--protect-allow",
        action="append",
        default=[],
        metavar="user:NAME|group:NAME",
        help="an identity that may still change them (repeatable; at least one with --protect)",
    )
    vap.add_argument("--output", "-o", metavar="FILE", help="write the YAML here instead of stdout")
    vap.set_defaults(func=run)


def protection(args: argparse.Namespace, result: Generation) -> list[dict[str, Any]]:
    """The self-protection policy and binding ``--protect`` asks for (none without it)."""
    if not args.protect:
        if args.protect_allow:
            raise UsageError("--protect-allow needs --protect")
        return []
    from policyengine.selfprotect import ProtectedNames, protection_policies

    users: list[str] = []
    groups: list[str] = []
    for position, entry in enumerate(args.protect_allow, 1):
        kind, _, name = str(entry).partition(":")
        if kind not in ("user", "group") or not name:
            raise UsageError(f"--protect-allow #{position} takes user:NAME or group:NAME, not {entry!r}")
        (users if kind == "user" else groups).append(name)
    # A static policy guards what API-based admission never sees: the generated policies themselves.
    owned = tuple(
        dict.fromkeys(d["metadata"]["name"] for d in result.documents if d["kind"].startswith("Valid"))
    )
    names = ProtectedNames(admission_policies=owned if args.static else ())
    try:
        return protection_policies(
            namespace=args.webhook_namespace,
            names=names,
            allow_users=users,
            allow_groups=groups,
            static=args.static,
        )
    except ValueError as err:
        raise UsageError(f"--protect: {err}") from None


def generation(args: argparse.Namespace, policy_set: PolicySet, *, namespace: str) -> Generation:
    """What ``generate vap`` with these options makes of ``policy_set``; bad options are usage errors."""
    from policyengine.vapgen import Scope, generate, parse_minor
    from webhook.configuration import EXEMPT_LABEL, SYSTEM_NAMESPACES

    try:
        minor = parse_minor(args.kubernetes_version)
    except ValueError as err:
        raise UsageError(f"--kubernetes-version: {err}") from None
    scope = Scope(tuple(sorted({*SYSTEM_NAMESPACES, namespace})), EXEMPT_LABEL)
    try:
        return generate(policy_set, minor=minor, static=args.static, scope=scope)
    except ValueError as err:  # --static before 1.36
        raise UsageError(f"--static: {err}") from None


def render(
    result: Generation, *, version: str, static: bool, extra: list[dict[str, Any]] | None = None
) -> str:
    """The YAML stream, opened by a comment naming what stays on the webhook and why; ``extra``
    documents (the self-protection policy) follow the generated ones."""
    import yaml

    mode = "static manifests, " if static else ""
    lines = [
        f"# policyengine generate vap ({mode}Kubernetes {version}+): {len(result.generated)} generated, "
        f"{len(result.skipped)} stay on the webhook"
    ]
    # One line each, whatever a name or path holds: a line break would end the comment.
    lines += ["#   " + " ".join(f"{s.policy} ({s.source}): {s.reason}".split()) for s in result.skipped]
    documents = result.documents + (extra or [])
    body = yaml.safe_dump_all(documents, sort_keys=False) if documents else ""
    return "\n".join(lines) + "\n" + ("---\n" + body if body else "")


def run(args: argparse.Namespace) -> int:

    policy_set = load_policies(args)
    result = generation(args, policy_set, namespace=args.webhook_namespace)
    guard = protection(args, result)
    text = render(result, version=args.kubernetes_version, static=args.static, extra=guard)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write --output {args.output}: {err.strerror}") from None
    else:
        sys.stdout.write(text)
    print(
        f"policyengine: {len(result.generated)} policies generated, {len(result.skipped)} stay on the webhook",
        file=sys.stderr,
    )
    return 0
