"""The exceptions a policy set declares, as the console shows them: the log records only an exception's
name; its approver, expiry and reason live in the PolicyException documents."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from audit.console.aggregates import ExceptionInfo
from policyengine.errors import LoadError
from policyengine.policyset import load_policy_set


def exceptions_from(
    paths: Sequence[str], config: Sequence[str] = (), *, include_bundled: bool = True
) -> tuple[ExceptionInfo, ...]:
    """The PolicyExceptions of the policy set at ``paths``; raises LoadError naming the bad documents."""
    policy_set = load_policy_set(list(paths), config_paths=list(config), include_bundled=include_bundled)
    return tuple(
        ExceptionInfo(e.name, e.policies, approved_by=e.approved_by, expires=e.expires, reason=e.reason)
        for e in policy_set.exceptions
    )


def served_exceptions(
    paths: Sequence[str], config: Sequence[str], include_bundled: bool
) -> tuple[ExceptionInfo, ...]:
    """The served policy set's exceptions, for serve's console. The webhook process loaded the same files
    already; should they fail here (changed since), the console shows exceptions by name only rather
    than not start."""
    try:
        return exceptions_from(paths, config, include_bundled=include_bundled)
    except Exception as exc:  # the webhook process reports a policy set that does not load
        logging.getLogger("policyengine.audit.api").warning(
            "the auditors' console shows exceptions without approver or expiry: the policy set did not load",
            extra={"error": str(exc)[:500]},
        )
        return ()


__all__ = ["LoadError", "exceptions_from"]
