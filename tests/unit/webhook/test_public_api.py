"""The webhook package's public surface is deliberate; importing it builds nothing."""

from __future__ import annotations

import webhook


def test_exported_members() -> None:
    assert sorted(webhook.__all__) == [
        "DecisionRecorder",
        "LivePolicies",
        "MemoryRecorder",
        "NullRecorder",
        "WebhookServices",
        "create_app",
        "parse_review",
        "review_response",
    ]
    for name in webhook.__all__:
        assert hasattr(webhook, name), name


def test_the_recorders_satisfy_the_port() -> None:
    assert isinstance(webhook.NullRecorder(), webhook.DecisionRecorder)
    assert isinstance(webhook.MemoryRecorder(), webhook.DecisionRecorder)
