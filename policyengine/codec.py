"""Every way a Request is made or shown: kube-apiserver's AdmissionRequest (read by the webhook and by the
test runner), a manifest as ``check`` submits it, and the ``request`` variable CEL sees.

One module, so that each field is read one way on every path: ``userInfo.extra`` is kept everywhere,
``dryRun`` is true only when it is the JSON ``true`` (as the API server sends it), and a field of the
wrong JSON type reads as absent rather than being coerced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from policyengine.errors import RequestError
from policyengine.inventory import as_created
from policyengine.match import CLUSTER_SCOPED_KINDS, gvk_of, gvr_of
from policyengine.model import GroupVersionKind, GroupVersionResource, Request, SourceRef, UserInfo
from policyengine.workloads.values import as_dict

OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
_SHOWN = 80  # characters of a bad value quoted back in an error message


# -- the wire: AdmissionRequest -> Request -----------------------------------------------------------------


def request_from_admission(raw: Mapping[str, Any], *, source: SourceRef | None = None) -> Request:
    """An AdmissionRequest (``AdmissionReview.request``, parsed JSON) as kube-apiserver sends it.
    Raises RequestError naming the first field that is not as the API server sends it."""
    uid = raw.get("uid")
    if not isinstance(uid, str) or not uid:
        raise RequestError(_wrong(raw, "uid", "request.uid", "a non-empty string"))
    operation = raw.get("operation")
    if not isinstance(operation, str) or operation not in OPERATIONS:
        if "operation" not in raw:
            raise RequestError(f"request.operation is missing; it must be one of {sorted(OPERATIONS)}")
        raise RequestError(f"request.operation {_show(operation)} is not one of {sorted(OPERATIONS)}")
    for key in ("kind", "resource"):
        if not isinstance(raw.get(key), dict):
            raise RequestError(_wrong(raw, key, f"request.{key}", "an object"))
    kind = raw["kind"].get("kind")
    if not isinstance(kind, str) or not kind:
        raise RequestError(_wrong(raw["kind"], "kind", "request.kind.kind", "a non-empty string"))
    if raw.get("object") is None and operation in ("CREATE", "UPDATE"):
        state = "is missing" if "object" not in raw else "is null"
        raise RequestError(f"request.object {state}; an object is required for {operation}")
    for key in ("object", "oldObject"):
        if raw.get(key) is not None and not isinstance(raw.get(key), dict):
            raise RequestError(f"request.{key} must be an object or null, got {_show(raw.get(key))}")
    return _decode(raw, source)


def request_from_partial_admission(
    raw: Mapping[str, Any], *, uid: str, source: SourceRef | None = None
) -> Request:
    """A hand-written AdmissionRequest (a PolicyTest ``request``, a Gatekeeper suite's AdmissionReview).
    What it leaves out is filled as the API server would: kind and resource from the object, name and
    namespace from its metadata, the ``uid`` given. Every field it gives is read exactly as
    ``request_from_admission`` reads it; nothing is refused (gator reviews objects with no operation)."""
    obj, old = raw.get("object"), raw.get("oldObject")
    subject = obj if isinstance(obj, Mapping) else old if isinstance(old, Mapping) else {}
    meta = as_dict(subject.get("metadata"))
    filled = dict(raw)
    if not isinstance(raw.get("kind"), Mapping):
        gvk = gvk_of(subject)
        filled["kind"] = {"group": gvk.group, "version": gvk.version, "kind": gvk.kind}
    if not isinstance(raw.get("resource"), Mapping):
        gvr = gvr_of(_gvk(filled["kind"]))
        filled["resource"] = {"group": gvr.group, "version": gvr.version, "resource": gvr.resource}
    for key, default in (("uid", uid), ("name", meta.get("name")), ("namespace", meta.get("namespace"))):
        if not raw.get(key):
            filled[key] = default
    return _decode(filled, source)


def _decode(raw: Mapping[str, Any], source: SourceRef | None) -> Request:
    """The one reading of each AdmissionRequest field; the callers have checked or filled the shape."""
    old = raw.get("oldObject")
    return Request(
        uid=_str(raw, "uid"),
        kind=_gvk(raw.get("kind")),
        resource=_gvr(raw.get("resource")),
        operation=_str(raw, "operation"),
        name=_str(raw, "name"),
        namespace=_str(raw, "namespace"),
        object=raw.get("object"),
        old_object=old,
        sub_resource=_str(raw, "subResource"),
        user_info=_user(raw.get("userInfo")),
        dry_run=raw.get("dryRun") is True,
        options=raw.get("options"),
        source=source,
    )


def _gvk(raw: Any) -> GroupVersionKind:
    kind = raw if isinstance(raw, Mapping) else {}
    return GroupVersionKind(_str(kind, "group"), _str(kind, "version"), _str(kind, "kind"))


def _gvr(raw: Any) -> GroupVersionResource:
    res = raw if isinstance(raw, Mapping) else {}
    return GroupVersionResource(_str(res, "group"), _str(res, "version"), _str(res, "resource"))


def _user(raw: Any) -> UserInfo:
    """authentication/v1 UserInfo: ``extra`` maps a key to a list of strings; other shapes read as absent."""
    if not isinstance(raw, Mapping):
        return UserInfo()
    groups = raw.get("groups")
    extra = raw.get("extra")
    return UserInfo(
        username=_str(raw, "username"),
        uid=_str(raw, "uid"),
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        extra={str(k): tuple(str(x) for x in v) for k, v in extra.items() if isinstance(v, list)}
        if isinstance(extra, Mapping)
        else {},
    )


def _str(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    return value if isinstance(value, str) else ""


def _wrong(raw: Mapping[str, Any], key: str, path: str, want: str) -> str:
    """The message for a field that is not as the API server sends it: a missing field is named as
    missing (not quoted back as ``None``), a wrong one is quoted back, bounded."""
    if key not in raw:
        return f"{path} is missing; it must be {want}"
    return f"{path} must be {want}, got {_show(raw[key])}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


# -- a manifest: what `check` submits ----------------------------------------------------------------------


def request_from_manifest(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    user: UserInfo | None = None,
    uid: str | None = None,
    source: SourceRef | None = None,
) -> Request:
    """The admission request kube-apiserver would send to create this manifest: a namespaced object
    without a namespace goes to ``default``, and a Namespace carries the name label the API server
    defaults onto it. The uid, when not given, is a digest of the manifest (same manifest, same uid)."""
    gvk = gvk_of(obj)
    ns_name = as_dict(obj.get("metadata")).get("name")
    if gvk.kind == "Namespace" and gvk.group == "" and isinstance(ns_name, str) and ns_name:
        obj = as_created(ns_name, obj)
    meta = as_dict(obj.get("metadata"))
    if uid is None:
        text = json.dumps(obj, sort_keys=True, default=str)
        uid = hashlib.sha256(text.encode()).hexdigest()[:32]
    return Request(
        uid=uid,
        kind=gvk,
        resource=gvr_of(gvk),
        operation=operation,
        name=str(meta.get("name") or meta.get("generateName") or ""),
        namespace="" if gvk.kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or "default"),
        object=obj,
        user_info=user or UserInfo(),
        source=source,
    )


# -- what CEL sees ----------------------------------------------------------------------------------------


def request_binding(request: Request) -> dict[str, Any]:
    """The ``request`` variable: the AdmissionRequest as Kubernetes shows it to CEL."""
    gvk, gvr = request.kind, request.resource
    return {
        "uid": request.uid,
        "kind": {"group": gvk.group, "version": gvk.version, "kind": gvk.kind},
        "resource": {"group": gvr.group, "version": gvr.version, "resource": gvr.resource},
        "subResource": request.sub_resource,
        "requestKind": {"group": gvk.group, "version": gvk.version, "kind": gvk.kind},
        "requestResource": {"group": gvr.group, "version": gvr.version, "resource": gvr.resource},
        "name": request.name,
        "namespace": request.namespace,
        "operation": request.operation,
        "userInfo": {
            "username": request.user_info.username,
            "uid": request.user_info.uid,
            "groups": list(request.user_info.groups),
            "extra": {k: list(v) for k, v in request.user_info.extra.items()},
        },
        "dryRun": request.dry_run,
        "options": request.options,
    }
