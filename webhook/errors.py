"""The webhook's one exception tree; every error carries a stable snake_case ``code`` and an HTTP status.

::

    WebhookError                  webhook_error          (500)
    ├── BadRequest                bad_request            (400) the request cannot be answered as sent
    │   ├── InvalidJSON           invalid_json           the body is not JSON (or not UTF-8)
    │   ├── NestingTooDeep        nesting_too_deep       the JSON nests deeper than the limit
    │   ├── NotAdmissionReview    not_admission_review   JSON, but not an AdmissionReview we speak
    │   ├── MissingRequest        missing_request        an AdmissionReview without ``request``
    │   └── ClientDisconnected    client_disconnected    the client went away before sending the body
    ├── NotFound                  not_found              (404) no such route
    ├── MethodNotAllowed          method_not_allowed     (405) the route does not take this method
    ├── BodyTimeout               body_timeout           (408) the body did not arrive in time
    ├── BodyTooLarge              body_too_large         (413) the body is over the configured limit
    ├── UnsupportedMediaType      unsupported_media_type (415) a Content-Type other than JSON
    ├── RecordFailed              record_failed          (500) the decision could not be recorded
    ├── InternalError             internal_error         (500) a fault in answering one request (a bug)
    ├── Overloaded                overloaded             (503) over the in-flight request or byte cap
    ├── DeadlineExceeded          deadline_exceeded      (503) the review was not read in the budget
    └── NotReady                  not_ready              (503) no policy set, or the inventory not synced

Errors become ``{"error": {"code": ..., "message": ...}}`` JSON responses; they never carry the body.
``CODES`` is the catalogue: every code the webhook answers or counts in ``policyengine_bad_requests``.
"""

from __future__ import annotations


class WebhookError(Exception):
    code = "webhook_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(WebhookError):
    code = "bad_request"
    status = 400


class InvalidJSON(BadRequest):
    code = "invalid_json"


class NestingTooDeep(BadRequest):
    code = "nesting_too_deep"


class NotAdmissionReview(BadRequest):
    code = "not_admission_review"


class MissingRequest(BadRequest):
    code = "missing_request"


class ClientDisconnected(BadRequest):
    code = "client_disconnected"


class NotFound(WebhookError):
    code = "not_found"
    status = 404


class MethodNotAllowed(WebhookError):
    code = "method_not_allowed"
    status = 405


class BodyTimeout(WebhookError):
    code = "body_timeout"
    status = 408


class BodyTooLarge(WebhookError):
    code = "body_too_large"
    status = 413


class UnsupportedMediaType(WebhookError):
    code = "unsupported_media_type"
    status = 415


class RecordFailed(WebhookError):
    code = "record_failed"
    status = 500


class InternalError(WebhookError):
    """A fault in the webhook's own handling of one request: that request alone is answered 500."""

    code = "internal_error"
    status = 500


class Overloaded(WebhookError):
    """Answered at once, without reading the body: kube-apiserver applies the webhook's failurePolicy."""

    code = "overloaded"
    status = 503


class DeadlineExceeded(WebhookError):
    """The review could not even be read and parsed within ``--timeout``: there is no request to apply
    the policies' failurePolicy to, so the answer is an error and kube-apiserver applies the webhook's."""

    code = "deadline_exceeded"
    status = 503


class NotReady(WebhookError):
    """Deciding without policies, or without the cluster state they read, would be a guess: 503 lets
    kube-apiserver apply the webhook's failurePolicy instead."""

    code = "not_ready"
    status = 503


CODES = frozenset(
    error.code
    for error in (
        WebhookError,
        BadRequest,
        InvalidJSON,
        NestingTooDeep,
        NotAdmissionReview,
        MissingRequest,
        ClientDisconnected,
        NotFound,
        MethodNotAllowed,
        BodyTimeout,
        BodyTooLarge,
        UnsupportedMediaType,
        RecordFailed,
        InternalError,
        Overloaded,
        DeadlineExceeded,
        NotReady,
    )
)
