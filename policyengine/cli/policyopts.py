"""The options that choose a policy set (``--policies``, ``--no-default-policies``, ``--config``), the
same on every verb that loads one, and the set they load."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyengine.policyset import PolicySet


def add_policy_options(p: argparse.ArgumentParser, *, metavar: str = "PATH") -> None:
    p.add_argument(
        "--policies", action="append", default=[], metavar=metavar, help="more policies (repeatable)"
    )
    p.add_argument("--no-default-policies", action="store_true", help="do not load the bundled packs")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="GovernanceConfig file(s)")


def load_policies(args: argparse.Namespace, **options: Any) -> PolicySet:
    """The policy set of --policies, --config and the bundled packs (unless --no-default-policies);
    ``options`` go to ``load_policy_set`` (a compiler, input limits)."""
    from policyengine.policyset import load_policy_set

    return load_policy_set(
        args.policies, config_paths=args.config, include_bundled=not args.no_default_policies, **options
    )
