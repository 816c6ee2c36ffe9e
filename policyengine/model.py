"""The core's vocabulary: frozen values for policies, requests and decisions.

Everything here is plain data. Loading turns documents into these values; the engine turns a Request into
a Decision. Compiled CEL lives in the engine, never here, so these values can be compared and hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

JSON = Any  # a value made of dict, list, str, int, float, bool and None


class Action(StrEnum):
    DENY = "deny"
    WARN = "warn"
    AUDIT = "audit"


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    EXCEPTED = "excepted"


class FailurePolicy(StrEnum):
    FAIL = "Fail"
    IGNORE = "Ignore"


@dataclass(frozen=True)
class SourceRef:
    """Where something came from: file and 1-based line (and column where known)."""

    file: str
    line: int = 1
    column: int | None = None


@dataclass(frozen=True)
class Expr:
    """A CEL expression as written, with the field path and line it was written at."""

    source: str
    path: str  # e.g. spec.validations[0].expression
    ref: SourceRef


@dataclass(frozen=True)
class Validation:
    expression: Expr
    message: str | None = None
    message_expression: Expr | None = None
    reason: str | None = None  # Forbidden | Unauthorized | Invalid | RequestEntityTooLarge
    field_path: str | None = None  # the object field the rule concerns, e.g. spec.replicas
    # A CEL string naming the offending field when it depends on the object (the first unpinned
    # container, ...); evaluated on failure, it wins over field_path.
    field_path_expression: Expr | None = None


@dataclass(frozen=True)
class Variable:
    """A named value. ``expression`` is lazy and memoised per evaluation; ``value`` is a constant."""

    name: str
    expression: Expr | None = None
    value: JSON = None


@dataclass(frozen=True)
class NamedExpr:
    """A matchCondition or auditAnnotation: a name (key) and an expression."""

    name: str
    expression: Expr


@dataclass(frozen=True)
class SelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()


@dataclass(frozen=True)
class ResourceRule:
    """One entry of resourceRules: names are plural resources ("deployments", "pods/status", "*")."""

    api_groups: tuple[str, ...] = ("*",)
    api_versions: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    resource_names: tuple[str, ...] = ()
    scope: str = "*"  # Cluster | Namespaced | *


@dataclass(frozen=True)
class KindRule:
    """spec.match.kinds entry: API groups and kinds ("*" allowed in either)."""

    api_groups: tuple[str, ...] = ("*",)
    kinds: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Match:
    """Which requests a policy applies to. Every set part must match (logical AND).

    ``resource_rules`` and ``kinds`` are alternatives: a request matches when it matches any rule of
    either list (when both are empty, every resource matches). ``namespaces``/``excluded_namespaces``
    accept a trailing or leading ``*`` wildcard, as Gatekeeper does.
    """

    resource_rules: tuple[ResourceRule, ...] = ()
    exclude_resource_rules: tuple[ResourceRule, ...] = ()
    kinds: tuple[KindRule, ...] = ()
    operations: tuple[str, ...] = ()  # empty: CREATE and UPDATE
    namespace_selector: LabelSelector | None = None
    object_selector: LabelSelector | None = None
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    scope: str = "*"  # Cluster | Namespaced | *
    # Further matches that must all hold too: a ValidatingAdmissionPolicyBinding's matchResources is
    # intersected with its policy's matchConstraints this way.
    also: tuple[Match, ...] = ()


@dataclass(frozen=True)
class ParamRef:
    """Where a policy finds its parameter objects at evaluation time (ValidatingAdmissionPolicyBinding)."""

    api_version: str
    kind: str
    name: str | None = None
    namespace: str | None = None
    selector: LabelSelector | None = None
    not_found_action: str = "Deny"  # Deny | Allow


@dataclass(frozen=True)
class Policy:
    name: str
    source: SourceRef
    origin: str = "Policy"  # the document kind it came from
    match: Match = field(default_factory=Match)
    match_conditions: tuple[NamedExpr, ...] = ()
    variables: tuple[Variable, ...] = ()
    validations: tuple[Validation, ...] = ()
    audit_annotations: tuple[NamedExpr, ...] = ()
    failure_policy: FailurePolicy = FailurePolicy.FAIL
    actions: frozenset[Action] = frozenset({Action.DENY})
    params: JSON = None  # static params; None means "the GovernanceConfig spec" for native policies
    param_ref: ParamRef | None = None
    uses_config_params: bool = True  # native policies see GovernanceConfig as `params`
    category: str = ""
    severity: str = ""
    description: str = ""
    remediation: str = ""
    # Kyverno's evaluation switches: a policy with ``admission`` off never runs at admission; a background
    # scan reads ``background``.
    admission: bool = True
    background: bool = True
    # Run once per pod template of the workload, ``object`` being a Pod of the template (a pod rule on
    # workload kinds whose template paths vary by object: ``workloads/podobjects.py``).
    pod_templates: bool = False
    # GovernanceConfig keys, any one of which must be set for the policy to be evaluated
    # (annotation policyengine.io/requires-config; policyengine/requirements.py).
    requires_config: tuple[str, ...] = ()
    # What the API server should do with the requests this policy judges when the webhook cannot answer
    # ("Fail" or "Ignore"; "" leaves it to ``webhook-config``): annotation policyengine.io/failure-policy.
    webhook_failure_policy: str = ""


@dataclass(frozen=True)
class ExceptionMatch:
    namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    kinds: tuple[KindRule, ...] = ()
    selector: LabelSelector | None = None


@dataclass(frozen=True)
class PolicyException:
    name: str
    source: SourceRef
    policies: tuple[str, ...]
    match: ExceptionMatch = field(default_factory=ExceptionMatch)
    match_conditions: tuple[NamedExpr, ...] = ()
    expires: datetime | None = None
    reason: str = ""
    approved_by: str = ""


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str


@dataclass(frozen=True)
class UserInfo:
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One admission request, from the API server or synthesised from a manifest by ``check``."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    name: str
    namespace: str  # "" for cluster-scoped resources
    object: JSON
    old_object: JSON = None
    sub_resource: str = ""
    user_info: UserInfo = field(default_factory=UserInfo)
    dry_run: bool = False
    options: JSON = None
    source: SourceRef | None = None  # the manifest document, for CI


@dataclass(frozen=True)
class Inventory:
    """Cluster state the caller hands in: namespaces by name, and any other objects (pods, params)."""

    namespaces: Mapping[str, JSON] = field(default_factory=dict)
    objects: tuple[JSON, ...] = ()


@dataclass(frozen=True)
class Result:
    """The outcome of one validation (or of a whole policy, for skip and policy-level errors)."""

    policy: str
    action: Action
    outcome: Outcome
    message: str = ""
    validation: int | None = None  # index into Policy.validations
    reason: str | None = None
    code: str | None = None  # an errors.EVAL_* code on outcome "error"
    exception: str | None = None  # the PolicyException used, on outcome "excepted"
    field_path: str | None = None
    category: str = ""
    severity: str = ""
    remediation: str = ""
    policy_source: SourceRef | None = None

    @property
    def denies(self) -> bool:
        """The one deny rule: a deny-action result that failed or could not be evaluated. A request is
        allowed exactly when none of its results denies."""
        return self.action is Action.DENY and self.outcome in (Outcome.FAIL, Outcome.ERROR)


@dataclass(frozen=True)
class Decision:
    request: Request
    results: tuple[Result, ...]
    allowed: bool
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)
    policy_set_digest: str = ""
    exceptions_expired: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """allowed | warned | denied: what the request's author is told."""
        if not self.allowed:
            return "denied"
        return "warned" if self.warnings else "allowed"

    @property
    def denials(self) -> tuple[Result, ...]:
        """The results that deny the request (``Result.denies``), in evaluation order."""
        return tuple(r for r in self.results if r.denies)

    @property
    def violations(self) -> tuple[Result, ...]:
        """Results that reach a user: failures, errors and excepted failures."""
        return tuple(r for r in self.results if r.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.EXCEPTED))
