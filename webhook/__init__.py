"""The validating admission webhook: a thin Starlette adapter around the core's decision function.

Public surface (pinned by tests/unit/webhook/test_public_api.py)::

    create_app(WebhookServices) -> Starlette     the ASGI app (nothing is built at import time)
    DecisionRecorder, NullRecorder, MemoryRecorder   the audit port and its adapters
    LivePolicies                                 the served policy set and its atomic reload
    parse_review, review_response                the AdmissionReview codec (pure)
"""

from __future__ import annotations

from webhook.app import WebhookServices, create_app
from webhook.policies import LivePolicies
from webhook.recorder import DecisionRecorder, MemoryRecorder, NullRecorder
from webhook.review import parse_review, review_response

__all__ = [
    "DecisionRecorder",
    "LivePolicies",
    "MemoryRecorder",
    "NullRecorder",
    "WebhookServices",
    "create_app",
    "parse_review",
    "review_response",
]
