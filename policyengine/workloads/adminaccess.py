"""DRA admin access asked by a ResourceClaim or ResourceClaimTemplate: the requests that set
``adminAccess: true``, read by the same request walk that counts a claim's devices (``dra.claim_requests``).

Admin access (KEP-5018) gives a claim devices already in use by other pods, and may give it more rights
on them; it is a privilege whatever the device class, so every request is read, GPU or not. The field is
``requests[].exactly.adminAccess`` in resource.k8s.io/v1 and v1beta2, ``requests[].adminAccess`` in
v1beta1; an alternative of ``firstAvailable`` that carries it is reported too. What is read is bounded
as the counting is (requests per claim, alternatives per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.workloads.claims import DeviceClasses, is_claim_object
from policyengine.workloads.dra import claim_requests
from policyengine.workloads.values import Problems


def admin_access_requests(obj: Mapping[str, Any], config: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """``[{request, path}]`` for each request of a claim object that asks for admin access; [] for any
    other object. ``path`` is the field's (``spec.devices.requests[0].exactly.adminAccess``)."""
    if not is_claim_object(obj):
        return []
    problems: Problems = []  # unreadable counts are gpu-counts-readable's findings, not this view's
    return [
        {"request": r.admin_request, "path": r.admin_path}
        for r in claim_requests(obj, DeviceClasses.from_config(config), problems)
        if r.admin_path
    ]
