"""The console's query-string parameters: parsed, bounded, and refused with a message naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.datastructures import QueryParams

from audit.console.queries import Filters
from audit.entry import SOURCES_BY_VERSION, VERDICTS, format_time
from audit.stores import Query

MAX_VALUE = 256  # characters in one filter value
PAGE_SIZES = (25, 50, 100, 200)
FILTER_FIELDS = ("since", "until", "verdict", "policy", "namespace", "user", "kind", "source", "exception")
SOURCES = SOURCES_BY_VERSION[max(SOURCES_BY_VERSION)]
DEFAULT_RANGE = timedelta(days=30)


class BadParameter(Exception):
    """A query-string parameter the console refuses; the message names it."""


def text(params: QueryParams, name: str) -> str | None:
    value = params.get(name)
    if value is None or value.strip() == "":
        return None
    if len(value) > MAX_VALUE:
        raise BadParameter(f"{name}: at most {MAX_VALUE} characters")
    if any(ord(ch) < 0x20 for ch in value):
        raise BadParameter(f"{name}: control characters are not allowed")
    return value.strip()


def when(params: QueryParams, name: str) -> datetime | None:
    raw = text(params, name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        format_time(parsed)  # a valid time can fall outside UTC's range
    except (ValueError, OverflowError) as exc:
        raise BadParameter(f"{name}: {raw!r} is not an ISO 8601 time (2026-01-31T00:00, UTC)") from exc
    return parsed


def cursor(params: QueryParams, name: str) -> int | None:
    raw = text(params, name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadParameter(f"{name}: {raw!r} is not an entry index")
    return int(raw)


def page_size(params: QueryParams) -> int:
    raw = text(params, "size")
    if raw is None:
        return PAGE_SIZES[1]
    if not raw.isdigit() or int(raw) not in PAGE_SIZES:
        raise BadParameter(f"size: one of {', '.join(map(str, PAGE_SIZES))}")
    return int(raw)


def filters(params: QueryParams) -> Filters:
    verdict, source = text(params, "verdict"), text(params, "source")
    if verdict is not None and verdict not in VERDICTS:
        raise BadParameter(f"verdict: one of {', '.join(VERDICTS)}")
    if source is not None and source not in SOURCES:
        raise BadParameter(f"source: one of {', '.join(SOURCES)}")
    since, until = when(params, "since"), when(params, "until")
    query = Query(
        since=format_time(since) if since else None,
        until=format_time(until) if until else None,
        verdict=verdict,
        policy=text(params, "policy"),
        namespace=text(params, "namespace"),
        user=text(params, "user"),
        kind=text(params, "kind"),
        source=source,
    )
    return Filters(query, exception=text(params, "exception"))


def time_range(params: QueryParams, now: datetime) -> tuple[datetime, datetime]:
    """since/until for the summaries: the last 30 days by default, at most ten years."""
    until = when(params, "until") or now
    since = when(params, "since") or until - DEFAULT_RANGE
    if since >= until:
        raise BadParameter("since: must be before until")
    if until - since > timedelta(days=3660):
        raise BadParameter("since: the range may span at most ten years")
    return since, until


def kept(params: QueryParams) -> dict[str, str]:
    """The filter fields as given (for links and the form), dropping empty ones."""
    return {name: value for name in FILTER_FIELDS if (value := params.get(name, "").strip())}
