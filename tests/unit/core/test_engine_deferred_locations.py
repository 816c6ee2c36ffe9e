"""The data locations (``workload.dataLocations``, ``org.residency.dataLocations``) are built only when
an expression that may read them runs (``policyengine.cel.deferred``): a request no such expression
judges never walks its env for storage URIs, and every route by which an expression can reach them --
a validation, a message, a matchCondition, a policy's or a shared variable, ``has()``, an index, a
leading-dot name, the root whole, an audit annotation, an exception's condition -- sees exactly what an
eagerly built view holds, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.cel import get_backend
from policyengine.engine import Engine
from policyengine.expressions import Compiler
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Decision
from policyengine.policyset import PolicySet, build_policy_set
from policyengine.views import views_for
from policyengine.workloads import references

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CONFIG = """\
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: deferred}
spec:
  residency:
    zones: {eu: {regions: [eu-west-1]}}
    dataLocations:
      - {prefix: "s3://eu-data/", region: eu-west-1}
      - {prefix: "s3://us-data/", region: us-east-1}
"""
LIST = "workload.dataLocations.map(d, d.path + '=' + d.uri + '/' + d.source).join(';')"
EMPTY = LIST + " == ''"
REGIONS = "org.residency.dataLocations.map(d, d.uri + '@' + d.region).join(';')"


def policy(name: str, body: str) -> str:
    return f"apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{body}"


def failing(name: str, message: str, extra: str = "") -> str:
    """A policy whose one validation fails, saying ``message`` (a CEL expression)."""
    return policy(
        name, f"{extra}  validations:\n    - expression: 'false'\n      messageExpression: {message!r}\n"
    )


ROUTES = [
    failing("message", LIST),
    failing("regions", REGIONS),
    policy("validation", f"  validations:\n    - expression: {EMPTY!r}\n      message: empty\n"),
    failing("variable", "variables.locs", f"  variables: [{{name: locs, expression: {REGIONS!r}}}]\n"),
    failing("shared-variable", "string(size(variables.sharedLocs)) + ' ' + variables.sharedLocs[0].uri"),
    failing(
        "condition",
        "'more than three'",
        "  matchConditions: [{name: many, expression: 'size(workload.dataLocations) > 3'}]\n",
    ),
    failing(
        "condition-skips",
        "'never'",
        "  matchConditions: [{name: none, expression: 'size(workload.dataLocations) == 0'}]\n",
    ),
    failing("has", "string(has(workload.dataLocations)) + string(has(org.residency.dataLocations))"),
    failing("index", "string(size(workload['dataLocations'])) + org['residency']['dataLocations'][0].region"),
    failing("leading-dot", "string(size(.workload.dataLocations)) + .org.residency.dataLocations[1].uri"),
    failing("optional", "string(size(workload.?dataLocations.orValue([])))"),
    failing("whole-root", "string(size(workload)) + string(workload.exists(k, k == 'dataLocations'))"),
    failing("whole-residency", "string(size(org.residency.dataLocations)) + org.residency.zone"),
    failing("comprehension", "[workload].map(w, w.dataLocations.size())[0] > 0 ? 'some' : 'none'"),
    policy(
        "annotation",
        "  validations: [{expression: 'true'}]\n"
        f"  auditAnnotations: [{{key: locs, valueExpression: {LIST!r}}}]\n",
    ),
    failing("excepted", "'waived only when the exception sees the locations'"),
    """\
apiVersion: policyengine.io/v1
kind: PolicyVariables
metadata: {name: shared}
spec:
  variables:
    - name: sharedLocs
      expression: "org.residency.dataLocations.filter(d, d.region != 'eu-west-1')"
""",
    """\
apiVersion: policyengine.io/v1
kind: PolicyException
metadata: {name: waiver}
spec:
  policies: [excepted]
  matchConditions: [{name: us-data, expression: "workload.dataLocations.exists(d, d.uri.startsWith('s3://us-data/'))"}]
  reason: test
  approvedBy: platform
""",
]
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: trainer
  namespace: ml
  annotations: {policyengine.io/datasets: "s3://eu-data/annotated/"}
spec:
  replicas: 2
  template:
    spec:
      initContainers:
        - name: fetch
          image: registry.example/fetch:1
          env: [{name: SRC, value: "s3://eu-data/raw/ s3://us-data/mirror/"}]
          args: ["--to", "gs://nowhere/cache/"]
      containers:
        - name: train
          image: registry.example/train:1
          command: ["train", "--data=s3://eu-data/cmd/"]
          env:
            - {name: A, value: "s3://eu-data/a/"}
            - {name: PLAIN, value: "no location"}
            - {name: B, value: "s3://us-data/b/"}
            - {name: C, value: "s3://eu-data/a/"}
        - name: serve
          image: registry.example/serve:1
          env: [{name: D, value: "s3://eu-data/d/"}]
"""


def policy_set(backend: str, policies: str = "---\n".join(ROUTES), config: str = CONFIG) -> PolicySet:
    return build_policy_set(
        parse_text(policies, "policies.yaml"),
        config_docs=parse_text(config, "config.yaml"),
        compiler=Compiler(get_backend(backend)),
    )


def decide(engine: Engine, manifest: str = DEPLOYMENT) -> Decision:
    (doc,) = parse_text(manifest, "deployment.yaml")
    return engine.evaluate(request_for(doc), now=NOW)


def seen(decision: Decision) -> list[tuple[str, str, str, str]]:
    return [(r.policy, str(r.outcome), r.message, r.exception or "") for r in decision.results]


def engines(policies: str = "---\n".join(ROUTES), config: str = CONFIG) -> dict[str, Engine]:
    """The fast backend as the engine builds it (deferred), the fast backend on an eager view, and the
    reference backend (which fills every field before it binds)."""
    fast = policy_set("fast", policies, config)
    return {
        "deferred": Engine(fast),
        "eager": Engine(fast, views=views_for(fast, defer=False)),
        "reference": Engine(policy_set("reference", policies, config)),
    }


def test_every_route_to_the_locations_sees_what_an_eager_view_holds() -> None:
    decided = {name: decide(engine) for name, engine in engines().items()}
    expected = seen(decided["eager"])
    assert seen(decided["deferred"]) == expected
    assert seen(decided["reference"]) == expected
    assert decided["deferred"].audit_annotations == decided["eager"].audit_annotations
    by_policy = {p: (outcome, message, exc) for p, outcome, message, exc in expected}
    # What each route saw is the whole list, in the walk's order, with the regions.
    assert by_policy["message"][1] == (
        "spec.template.spec.initContainers[0].env[0].value=s3://eu-data/raw//env;"
        "spec.template.spec.initContainers[0].env[0].value=s3://us-data/mirror//env;"
        "spec.template.spec.initContainers[0].args[1]=gs://nowhere/cache//args;"
        "spec.template.spec.containers[0].env[0].value=s3://eu-data/a//env;"
        "spec.template.spec.containers[0].env[2].value=s3://us-data/b//env;"
        "spec.template.spec.containers[0].env[3].value=s3://eu-data/a//env;"
        "spec.template.spec.containers[0].command[1]=s3://eu-data/cmd//command;"
        "spec.template.spec.containers[1].env[0].value=s3://eu-data/d//env;"
        "metadata.annotations[policyengine.io/datasets]=s3://eu-data/annotated//annotation"
    )
    assert "s3://us-data/b/@us-east-1" in by_policy["regions"][1]
    assert by_policy["validation"][0] == "fail"
    assert by_policy["condition"][0] == "fail" and by_policy["condition-skips"][0] == "skip"
    assert by_policy["has"][1] == "truetrue"
    assert by_policy["index"][1] == "9eu-west-1" and by_policy["leading-dot"][1] == "9s3://us-data/mirror/"
    assert by_policy["optional"][1] == "9" and by_policy["whole-residency"][1] == "9"
    assert by_policy["whole-root"][1].endswith("true") and by_policy["comprehension"][1] == "some"
    assert by_policy["shared-variable"][1].startswith("3 s3://us-data/mirror/")
    assert by_policy["excepted"][2] == "waiver"
    assert "s3://eu-data/d/" in decided["eager"].audit_annotations["annotation/locs"]


def test_the_same_after_the_expressions_are_generated() -> None:
    built = engines()
    for _ in range(3):  # the fast backend runs an expression as generated Python from its second run
        deferred, eager = decide(built["deferred"]), decide(built["eager"])
    assert seen(deferred) == seen(eager)
    assert deferred.audit_annotations == eager.audit_annotations


OTHER = policy(
    "gpus-only",
    "  matchConditions: [{name: zoned, expression: \"org.residency.zone != ''\"}]\n"
    "  validations:\n    - expression: 'workload.gpus.total == 0 && org.residency.zone == \"eu\"'\n      message: nope\n"
    "---\n"
    + policy(
        "residency",
        "  matchConditions:\n"
        "    - {name: zoned, expression: \"org.residency.zone == 'us'\"}\n"
        "    - {name: located, expression: 'size(workload.dataLocations) > 0'}\n"
        "  validations: [{expression: 'org.residency.dataLocations.all(d, d.region != \"\")', message: unknown}]\n",
    ),
)


def walks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    walked: list[str] = []
    original = references._env_locations

    def counting(envs: list[Any], hits: list[int], path: str, *args: Any) -> None:
        walked.append(path)
        original(envs, hits, path, *args)

    monkeypatch.setattr(references, "_env_locations", counting)
    return walked


def test_no_walk_for_locations_when_no_expression_that_runs_may_read_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = engines(OTHER)
    walked = walks(monkeypatch)
    deferred = decide(built["deferred"])
    assert walked == []  # the residency policy is skipped by its first condition: nothing read them
    assert seen(deferred) == seen(decide(built["eager"])) == seen(decide(built["reference"]))
    assert len(walked) == 6  # the eager view and the reference backend each walk the three envs


def test_the_walk_is_done_once_however_many_expressions_read_the_locations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = engines()["deferred"]
    walked = walks(monkeypatch)
    decide(engine)
    assert len(walked) == 3  # one walk per container with an env, shared by every reader


def test_a_failed_fill_fails_every_reader_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engines()["deferred"]

    def broken(*args: Any) -> None:
        raise RuntimeError("the walk failed")

    monkeypatch.setattr(references, "_env_locations", broken)
    decision = decide(engine)
    found = {r.policy: r for r in decision.results}
    assert not decision.allowed
    for name in ("validation", "condition", "condition-skips"):  # read them to decide: errors
        assert str(found[name].outcome) == "error", name
        assert "the data locations cannot be read: RuntimeError: the walk failed" in found[name].message
    assert str(found["excepted"].outcome) == "fail"  # its exception could not see them: no waiver
    assert not found["excepted"].exception
    assert "annotation/locs" not in decision.audit_annotations  # an annotation that fails is left out


def test_an_update_walks_neither_object_when_nothing_reads_the_locations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On UPDATE the old object is described for its GPUs only: its locations are never read."""
    built = engines(OTHER)
    (doc,) = parse_text(DEPLOYMENT, "deployment.yaml")
    create = request_for(doc)
    update = replace(create, operation="UPDATE", old_object=create.object)
    walked = walks(monkeypatch)
    deferred = built["deferred"].evaluate(update, now=NOW)
    assert walked == []  # was 3: the old object's envs
    assert seen(deferred) == seen(built["eager"].evaluate(update, now=NOW))


ZONED = DEPLOYMENT.replace(
    "  namespace: ml\n", "  namespace: ml\n  labels: {policyengine.io/residency: eu}\n"
)


def test_a_request_bound_to_a_zone_has_them_built_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a zone the residency pack reads them: they are built with the views (one walk, not a walk
    for the names and another when first read), and every route sees the same."""
    walked = walks(monkeypatch)
    built = engines(OTHER)
    decide(built["deferred"], ZONED)
    assert len(walked) == 3  # at once, though no policy of this set reads them
    built = engines()
    assert seen(decide(built["deferred"], ZONED)) == seen(decide(built["eager"], ZONED))
    assert seen(decide(built["reference"], ZONED)) == seen(decide(built["eager"], ZONED))
