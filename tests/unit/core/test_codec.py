"""The request codec: each AdmissionRequest field is read one way, whether kube-apiserver sent it or a
test wrote it by hand; a manifest becomes the CREATE kube-apiserver would send; CEL sees it all."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.codec import (
    request_binding,
    request_from_admission,
    request_from_manifest,
    request_from_partial_admission,
)
from policyengine.errors import RequestError
from policyengine.model import UserInfo

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "apps"}, "spec": {}}


def wire(**fields: Any) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "name": "web",
        "namespace": "apps",
        "object": POD,
        **fields,
    }


def test_user_extra_is_kept_and_shown_to_cel_as_lists() -> None:
    user = {"username": "alice", "uid": "42", "groups": ["devs"], "extra": {"example.com/team": ["ml", "x"]}}
    request = request_from_admission(wire(userInfo=user))
    assert request.user_info == UserInfo("alice", "42", ("devs",), {"example.com/team": ("ml", "x")})
    shown = request_binding(request)["userInfo"]
    assert shown == {
        "username": "alice",
        "uid": "42",
        "groups": ["devs"],
        "extra": {"example.com/team": ["ml", "x"]},
    }


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (None, UserInfo()),
        ("alice", UserInfo()),
        ({"username": 7, "uid": ["x"], "groups": "devs"}, UserInfo()),
        ({"extra": ["a"]}, UserInfo()),
        ({"extra": {"k": "not-a-list", "j": None, "n": 3}}, UserInfo()),
        ({"extra": {"k": [1, True, None], "m": []}}, UserInfo(extra={"k": ("1", "True", "None"), "m": ()})),
        ({"groups": ["a", 2]}, UserInfo(groups=("a", "2"))),
    ],
)
def test_hostile_user_info_reads_the_same_on_every_path_and_never_raises(
    user: Any, expected: UserInfo
) -> None:
    raw = wire(userInfo=user)
    assert request_from_admission(raw).user_info == expected
    assert request_from_partial_admission(raw, uid="t").user_info == expected


@pytest.mark.parametrize(
    ("value", "dry_run"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("true", False),
        ("false", False),
        (1, False),
        ([True], False),
    ],
)
def test_dry_run_is_only_the_json_true_on_every_path(value: Any, dry_run: bool) -> None:
    raw = wire(dryRun=value)
    assert request_from_admission(raw).dry_run is dry_run
    assert request_from_partial_admission(raw, uid="t").dry_run is dry_run
    assert request_binding(request_from_admission(raw))["dryRun"] is dry_run


def test_a_partial_request_is_filled_from_its_object() -> None:
    request = request_from_partial_admission({"operation": "UPDATE", "oldObject": POD}, uid="t-1")
    assert (request.uid, request.operation, request.name, request.namespace) == (
        "t-1",
        "UPDATE",
        "web",
        "apps",
    )
    assert (request.kind.kind, request.kind.version, request.resource.resource) == ("Pod", "v1", "pods")
    assert request.object is None and request.old_object == POD
    # A plain object, as gator reviews it: no operation, nothing refused.
    assert request_from_partial_admission({"object": POD}, uid="t-2").operation == ""


def test_what_a_partial_request_gives_wins_over_the_object() -> None:
    request = request_from_partial_admission(wire(uid="given", name="other", namespace="elsewhere"), uid="t")
    assert (request.uid, request.name, request.namespace) == ("given", "other", "elsewhere")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"uid": 5}, r"request\.uid"),
        ({"operation": "PATCH"}, r"request\.operation 'PATCH'"),
        ({"resource": None}, r"request\.resource must be an object"),
        ({"kind": {"version": "v1"}}, r"request\.kind\.kind"),
        ({"operation": "UPDATE", "object": None}, "object is required for UPDATE"),
        ({"oldObject": "x"}, r"request\.oldObject must be an object or null"),
    ],
)
def test_a_malformed_wire_request_names_its_field(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(RequestError, match=match) as info:
        request_from_admission(wire(**fields))
    assert info.value.code == "invalid_request"


def test_a_bad_value_is_quoted_back_bounded() -> None:
    with pytest.raises(RequestError) as info:
        request_from_admission(wire(operation="X" * 100_000))
    assert len(str(info.value)) < 200


def test_a_manifest_becomes_the_create_kube_apiserver_would_send() -> None:
    request = request_from_manifest(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "w-"}}
    )
    assert (request.operation, request.name, request.namespace) == ("CREATE", "w-", "default")
    assert (request.kind.group, request.resource.resource) == ("apps", "deployments")
    assert request.uid == request_from_manifest(dict(request.object)).uid  # same manifest, same uid

    ns = request_from_manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    assert ns.namespace == ""
    assert ns.object["metadata"]["labels"] == {"kubernetes.io/metadata.name": "ml"}
