"""The parent lookup of scale requests (``policyengine.scale.ParentLookup``) over the Kubernetes API.

A scale request is judged as the UPDATE of the workload it scales, so the webhook GETs that workload at
admission: one GET per scale event, bounded by a short timeout (connect and each read) and by the
webhook's body size limit. What cannot be read raises ``ParentUnavailable`` with the reason (the core
turns it into an error result, so failurePolicy decides); a parent that does not exist (404) is None.
"""

from __future__ import annotations

import json
from typing import Any

from policyengine.scale import ParentUnavailable

DEFAULT_TIMEOUT = 1.0  # seconds; the whole review has the webhook's budget (3 s by default)


class KubeParents:
    """``get`` through the official client: the core API for the core group, else ``/apis/<group>``."""

    def __init__(self, api_client: Any, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self.timeout = timeout
        self.max_bytes = max_bytes

    def get(self, group: str, version: str, resource: str, namespace: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        what = f"GET {group or 'core'}/{version} {resource} {namespace}/{name}"
        if not (version and resource and namespace and name):
            raise ParentUnavailable(f"{what}: the request does not name the object")
        options: dict[str, Any] = {
            "_preload_content": False,
            "_request_timeout": (self.timeout, self.timeout),
        }
        response: Any
        try:
            if group == "":
                if resource != "replicationcontrollers" or version != "v1":
                    raise ParentUnavailable(f"{what}: not a core workload with a scale subresource")
                response = self._core.read_namespaced_replication_controller(name, namespace, **options)
            else:
                response = self._custom.get_namespaced_custom_object(
                    group, version, namespace, resource, name, **options
                )
        except ApiException as err:
            if err.status == 404:
                return None
            raise ParentUnavailable(f"{what}: HTTP {err.status} {err.reason}") from None
        except ParentUnavailable:
            raise
        except Exception as err:  # a timeout, a refused or dropped connection
            raise ParentUnavailable(f"{what}: {type(err).__name__}: {err}") from None
        return self._read(response, what)

    def _read(self, response: Any, what: str) -> Any:
        try:
            body = response.read(self.max_bytes + 1)
        except Exception as err:
            raise ParentUnavailable(f"{what}: {type(err).__name__}: {err}") from None
        finally:
            response.release_conn()
        if len(body) > self.max_bytes:
            raise ParentUnavailable(f"{what}: the object is larger than {self.max_bytes} bytes")
        try:
            obj = json.loads(body)
        except ValueError:
            raise ParentUnavailable(f"{what}: the answer is not JSON") from None
        if not isinstance(obj, dict):
            raise ParentUnavailable(f"{what}: the answer is not an object")
        return obj


def parents_from_config(
    kubeconfig: str | None = None, *, max_bytes: int, timeout: float = DEFAULT_TIMEOUT
) -> KubeParents:
    """A lookup with the same credentials as the inventory (in-cluster service account, or kubeconfig)."""
    from webhook.cluster import api_client_from_config

    return KubeParents(api_client_from_config(kubeconfig), timeout=timeout, max_bytes=max_bytes)
