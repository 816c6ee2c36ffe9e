"""The watches a Kubernetes API port has open, and the one way they end: an expired resourceVersion
(HTTP 410) is ``Gone`` for the informer to relist, and shutdown stops them all. Shared by the cluster
inventory's port (``webhook.cluster``) and the param objects' (``webhook.paramwatch``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any


class Gone(Exception):
    """The resourceVersion asked for is too old (HTTP 410): relist."""


class Watches:
    """The watches a port has open: each stream registered until it ends, an expired resourceVersion (HTTP
    410) raised as ``Gone`` so the informer relists, and every one stopped at once on shutdown."""

    def __init__(self) -> None:
        self._open: list[Any] = []
        self._lock = threading.Lock()

    def stream(
        self, func: Callable[..., Any], *args: str, resource_version: str, timeout: int
    ) -> Iterator[Any]:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        w = watch.Watch(return_type=object)  # type: ignore[no-untyped-call]
        with self._lock:
            self._open.append(w)
        try:
            yield from w.stream(  # type: ignore[no-untyped-call]
                func,
                *args,
                resource_version=resource_version,
                timeout_seconds=timeout,  # also turns off the client's own 410 retry: we relist instead
                allow_watch_bookmarks=True,
            )
        except ApiException as err:
            if err.status == 410:
                raise Gone(str(err.reason)) from err
            raise
        finally:
            with self._lock:
                self._open.remove(w)

    def stop(self) -> None:
        with self._lock:
            for w in self._open:
                w.stop()
