"""The ``matchConditions`` that split the built-in pod kinds between the Fail and the Ignore entry.

A Pod, a built-in controller, a PodTemplate or a scheduling group that asks for an accelerator (a
container or init container resource the workload view counts as one, ``workloads.accelerators``, or a
DRA extended resource), makes DRA claims (``resourceClaims`` of the pod spec, a PodGroup's, a Job's
``spec.scheduling``) or names models or datasets by annotation (``workloads.references``) goes to the
Fail entry: while the webhook is down it is refused, so the GPU quotas cannot be bypassed. The rest of
those kinds go to the Ignore entry, so an outage never blocks ordinary Deployments and Pods.

The two entries' conditions are the exact negation of each other on the split kinds (and true for
every other request), so a request reaches exactly one entry. Every field is read behind ``has`` and
``type`` guards, so a sparse or malformed object never makes a condition fail; should one ever fail to
evaluate, the API server applies the entry's failurePolicy: the Fail entry refuses the request (fail
closed) and the Ignore entry skips it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policyengine.workloads import DATASETS_ANNOTATION, MODELS_ANNOTATION, GpuRules
from policyengine.workloads.accelerators import ALWAYS_COUNTED, DEFAULT_ACCELERATORS, MIG_PREFIX
from policyengine.workloads.extended import IMPLICIT_PREFIX
from webhook.scope import POD_CONTROLLERS, SCHEDULING, Resource

# The kinds split by the condition: their pod spec says whether they run accelerators.
SPLIT: frozenset[Resource] = frozenset({*POD_CONTROLLERS, ("", "podtemplates"), *SCHEDULING})
GOVERNED_CONDITION = "accelerators-claims-or-model-annotations"
OPEN_CONDITION = "no-accelerators-claims-or-model-annotations"
# Where each kind keeps its pod spec (a Pod's and a PodGroup's is spec; a Job's group claims are in
# spec.scheduling), and the metadata whose annotations name models and datasets.
SPEC_PATHS: tuple[tuple[str, ...], ...] = (
    ("spec",),
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
    ("template", "spec"),
    ("spec", "scheduling"),
)
METADATA_PATHS: tuple[tuple[str, ...], ...] = (
    ("metadata",),
    ("spec", "template", "metadata"),
    ("spec", "jobTemplate", "spec", "template", "metadata"),
    ("template", "metadata"),
)
ANNOTATIONS = (MODELS_ANNOTATION, DATASETS_ANNOTATION)
PREFIXES = (MIG_PREFIX, IMPLICIT_PREFIX)
MAX_NAMES = 256  # accelerator names a config may add to the condition (it lists a handful)
MAX_EXPRESSION = 16_384  # characters of one condition; the generated one is a few thousand


def accelerator_names(config: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The resource names counted as accelerators: the default list, those always counted and the
    config's ``spec.gpu.resources`` (a superset of what any config puts in force)."""
    configured = sorted(GpuRules.from_config(config).names) if config else []
    names = tuple(dict.fromkeys((*DEFAULT_ACCELERATORS, *ALWAYS_COUNTED, *configured)))
    if len(names) > MAX_NAMES:
        raise ValueError(f"spec.gpu.resources names {len(names)} resources; at most {MAX_NAMES}")
    return names


def _literal(value: str) -> str:
    return json.dumps(value)  # a JSON string is a CEL string literal


def _guarded(path: Sequence[str]) -> str:
    """``object.<path>`` present and a map at every step."""
    steps = [".".join(("object", *path[: i + 1])) for i in range(len(path))]
    parents = ["object", *steps[:-1]]
    return " && ".join(f"type({p}) == map && has({s})" for p, s in zip(parents, steps, strict=True)) + (
        f" && type({steps[-1]}) == map"
    )


def _present(paths: Iterable[Sequence[str]]) -> str:
    """A list of the maps found at ``paths``, built without reading what is absent."""
    return " + ".join(f"({_guarded(p)} ? [object.{'.'.join(p)}] : [])" for p in paths)


def governed(names: Sequence[str]) -> str:
    """CEL true when ``object`` asks for an accelerator, makes DRA claims or names models or datasets."""
    listed = "[" + ", ".join(_literal(n) for n in names) + "]"
    prefixed = " || ".join(f"n.startsWith({_literal(p)})" for p in PREFIXES)
    name = f"type(n) == string && (n in {listed} || {prefixed})"
    side = " || ".join(
        f"(has(c.resources.{part}) && type(c.resources.{part}) == map && c.resources.{part}.exists(n, {name}))"
        for part in ("limits", "requests")
    )
    container = f"type(c) == map && has(c.resources) && type(c.resources) == map && ({side})"
    lists = " || ".join(
        f"(has(s.{f}) && type(s.{f}) == list && s.{f}.exists(c, {container}))"
        for f in ("containers", "initContainers")
    )
    claims = "(has(s.resourceClaims) && type(s.resourceClaims) == list && size(s.resourceClaims) > 0)"
    keys = " || ".join(f"{_literal(k)} in m.annotations" for k in ANNOTATIONS)
    notes = f"has(m.annotations) && type(m.annotations) == map && ({keys})"
    return (
        f"object != null && type(object) == map && (({_present(SPEC_PATHS)}).exists(s, {claims} || {lists})"
        f" || ({_present(METADATA_PATHS)}).exists(m, {notes}))"
    )


def split_request(rules: Iterable[Mapping[str, Any]]) -> str:
    """CEL true for a request one of the split ``rules`` (ValidatingWebhook rules) matches."""
    terms = [
        f"request.resource.group in {json.dumps(r['apiGroups'])}"
        f" && request.resource.resource in {json.dumps(r['resources'])}"
        f" && request.operation in {json.dumps(r['operations'])}"
        for r in rules
    ]
    sub = "(!has(request.subResource) || request.subResource == '')"
    return f"{sub} && (" + " || ".join(f"({t})" for t in terms) + ")"


def match_conditions(
    split_rules: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The Fail entry's and the Ignore entry's conditions: on a split request, governed and not governed."""
    split, gov = split_request(split_rules), governed(accelerator_names(config))
    fail = f"!({split}) || ({gov})"
    ignore = f"!({split}) || !({gov})"
    for expr in (fail, ignore):
        if len(expr) > MAX_EXPRESSION:
            raise ValueError(f"a matchCondition of {len(expr)} characters; at most {MAX_EXPRESSION}")
    return [{"name": GOVERNED_CONDITION, "expression": fail}], [
        {"name": OPEN_CONDITION, "expression": ignore}
    ]
