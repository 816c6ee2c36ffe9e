"""Which discovered resources a scan reads: what the scanned policies may match, --kinds, the inventory's."""

from __future__ import annotations

from policyengine.model import KindRule, Match, Policy, ResourceRule, SourceRef
from webhook.kubescan import APIResource, may_match, wanted

TRAINJOBS = APIResource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", True)
ISVC = APIResource("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService", True)
SECRETS = APIResource("", "v1", "secrets", "Secret", True)
PODS = APIResource("", "v1", "pods", "Pod", True)


def policy(match: Match, *, background: bool = True) -> Policy:
    return Policy(name="p", source=SourceRef("f"), match=match, background=background)


def test_resource_rules_match_by_group_version_and_plural() -> None:
    rule = ResourceRule(api_groups=("trainer.kubeflow.org",), api_versions=("*",), resources=("trainjobs",))
    match = Match(resource_rules=(rule,))
    assert may_match(match, TRAINJOBS) and not may_match(match, ISVC)


def test_kind_rules_and_wildcards() -> None:
    assert may_match(Match(kinds=(KindRule(("serving.kserve.io",), ("InferenceService",)),)), ISVC)
    assert may_match(Match(kinds=(KindRule(("*",), ("*",)),)), SECRETS)
    assert may_match(Match(), SECRETS)  # no rule at all: every resource


def test_a_binding_narrows_its_policy() -> None:
    narrowed = Match(kinds=(KindRule(("*",), ("*",)),), also=(Match(kinds=(KindRule(("ray.io",), ("*",)),)),))
    assert not may_match(narrowed, ISVC)


def test_wanted_reads_matched_resources_within_kinds_and_always_the_inventorys() -> None:
    everything = policy(Match())
    found = [TRAINJOBS, ISVC, SECRETS, PODS]
    assert wanted(found, [everything], []) == found
    assert wanted(found, [everything], ["TrainJob"]) == [TRAINJOBS, PODS]  # pods: the views read them
    assert wanted(found, [everything], ["inferenceservices.serving.kserve.io"]) == [ISVC, PODS]
    # A policy a scan does not run does not make anything read.
    assert wanted(found, [policy(Match(), background=False)], []) == [PODS]
