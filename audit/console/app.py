"""The console's routes: page shells (public, no data), their data as HTML fragments (bearer token), the
decision downloads, and the static files.

A browser does not send a bearer token when it follows a link, so a page is a shell: the layout, the
forms and the verification mount points, holding nothing from the log. Its script fetches the page's
data from ``/console/data/...`` with the token kept in the tab's sessionStorage and puts the fragment,
rendered and escaped here, in place. Every data route is a read; none writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from audit.console import aggregates, downloads, params, queries
from audit.console.aggregates import ExceptionInfo
from audit.console.chart import policy_chart
from audit.console.logstatus import LogStatus
from audit.console.security import RateLimit, secured
from audit.errors import AuditError
from audit.log import AuditLog

HERE = Path(__file__).parent
STATIC = HERE / "static"
Handler = Callable[[Request], Response]
COSTS = {"decisions": 1.0, "decision": 0.2, "download": 10.0, "summary": 5.0, "log": 0.5}
PUBLIC = re.compile(
    r"/console(/|/login|/key|/decisions|/decisions/\d{1,18}|/policies|/exceptions|/log"
    r"|/static/[A-Za-z0-9][A-Za-z0-9._-]{0,99})?"
)


def is_public(path: str) -> bool:
    """Paths served without a token: the page shells and static files (nothing from the log)."""
    return PUBLIC.fullmatch(path) is not None


class Console:
    def __init__(
        self,
        log: AuditLog,
        *,
        cap: Callable[[Handler], Handler],
        exceptions: tuple[ExceptionInfo, ...] = (),
        status: LogStatus | None = None,
        limit: RateLimit | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.log, self.cap, self.exceptions = log, cap, exceptions
        self.status = status or LogStatus()
        self.limit = limit or RateLimit()
        self.now = now
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True)
        )

    def routes(self) -> list[BaseRoute]:
        data = self._data
        return [
            Route("/console", self.home, methods=["GET"]),
            Route("/console/", self.home, methods=["GET"]),
            Route("/console/login", self._shell("login.html", "Sign in"), methods=["GET"]),
            Route("/console/key", self._shell("key.html", "Public key"), methods=["GET"]),
            Route("/console/decisions", self._shell("decisions.html", "Decisions"), methods=["GET"]),
            Route(
                "/console/decisions/{index:int}", self._shell("decision.html", "Decision"), methods=["GET"]
            ),
            Route("/console/policies", self._shell("policies.html", "Policies"), methods=["GET"]),
            Route("/console/exceptions", self._shell("exceptions.html", "Exceptions"), methods=["GET"]),
            Route("/console/log", self._shell("log.html", "Log"), methods=["GET"]),
            Route("/console/data/session", self.session, methods=["GET"]),
            Route("/console/data/decisions", data("decisions", self.decisions), methods=["GET"]),
            Route("/console/data/decisions.csv", data("download", self.csv), methods=["GET"]),
            Route("/console/data/decisions.jsonl", data("download", self.jsonl), methods=["GET"]),
            Route("/console/data/decisions/{index:int}", data("decision", self.decision), methods=["GET"]),
            Route("/console/data/policies", data("summary", self.policies), methods=["GET"]),
            Route("/console/data/exceptions", data("summary", self.exception_page), methods=["GET"]),
            Route("/console/data/log", data("log", self.log_page), methods=["GET"]),
            Mount("/console/static", StaticFiles(directory=STATIC), name="console-static"),
        ]

    def home(self, request: Request) -> Response:
        return secured(RedirectResponse("/console/decisions", status_code=303))

    def session(self, request: Request) -> Response:
        """204 when the token is good (the auth middleware answered 401 otherwise): the login check."""
        return secured(Response(status_code=204))

    def _shell(self, template: str, title: str) -> Handler:
        def page(request: Request) -> Response:
            context = {
                "title": title,
                "path": request.url.path,
                "source": "/console/data" + request.url.path.removeprefix("/console"),
                "query": request.url.query,
                "form": params.kept(request.query_params),
                "index": request.path_params.get("index"),
                "sizes": params.PAGE_SIZES,
                "verdicts": ("allowed", "denied", "warned"),
                "sources": params.SOURCES,
            }
            return secured(HTMLResponse(self.env.get_template(template).render(context)))

        return page

    def _data(self, kind: str, handler: Handler) -> Handler:
        capped = self.cap(handler)

        def charged(request: Request) -> Response:
            refused = self.limit.charge(request, COSTS[kind])
            if refused is not None:
                return secured(refused)
            try:
                return secured(capped(request))
            except params.BadParameter as exc:
                return secured(self._fragment("error.html", {"message": str(exc)}, status=400))
            except AuditError as exc:
                message = f"the log could not be read: {exc} ({exc.code})"
                return secured(self._fragment("error.html", {"message": message}, status=500))

        return charged

    def _fragment(self, template: str, context: dict[str, Any], status: int = 200) -> Response:
        return HTMLResponse(self.env.get_template(template).render(context), status_code=status)

    def decisions(self, request: Request) -> Response:
        q = request.query_params
        filters, size = params.filters(q), params.page_size(q)
        after, before = params.cursor(q, "after"), params.cursor(q, "before")
        if after is not None:
            page = queries.page_after(self.log, filters, after, size)
        else:
            page = queries.page_before(self.log, filters, before, size)
        kept = params.kept(q) | ({"size": str(size)} if size != params.PAGE_SIZES[1] else {})

        def link(**cursor: int) -> str:
            return "/console/decisions?" + urlencode(kept | {k: str(v) for k, v in cursor.items()})

        context = {
            "page": page,
            "rows": [downloads.flat(row) for row in page.rows],
            "older": link(before=page.older) if page.older is not None else None,
            "newer": link(after=page.newer - 1) if page.newer is not None else None,
            "newest": "/console/decisions?" + urlencode(kept) if page.newer is not None else None,
            "download": urlencode(kept),
            "size": queries.log_size(self.log),
        }
        return self._fragment("decisions_data.html", context)

    def _download(self, request: Request) -> tuple[list[Any], int, bool]:
        filters = params.filters(request.query_params)
        return queries.walk(self.log, filters, downloads.SCAN_BUDGET, downloads.MAX_ROWS)

    def csv(self, request: Request) -> Response:
        rows, low, more = self._download(request)
        return self._file(downloads.to_csv(rows), "text/csv", "decisions.csv", low, more)

    def jsonl(self, request: Request) -> Response:
        rows, low, more = self._download(request)
        return self._file(downloads.jsonl(rows), "application/jsonl", "decisions.jsonl", low, more)

    def _file(self, body: bytes, media: str, name: str, low: int, more: bool) -> Response:
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Policyengine-Complete": "false" if more else "true",
            "X-Policyengine-Examined-From": str(low),
        }
        return Response(body, media_type=media + "; charset=utf-8", headers=headers)

    def decision(self, request: Request) -> Response:
        index = int(request.path_params["index"])
        row = queries.one(self.log, index)
        if row is None:
            start, size = queries.live_start(self.log), queries.log_size(self.log)
            held = f"entries [{start}, {size}); the older ones are archived" if start else f"{size} entries"
            message = f"no entry {index}: the log holds {held}"
            return self._fragment("error.html", {"message": message}, status=404)
        known = {info.name: info for info in self.exceptions}
        entry = row.entry
        context = {
            "index": index,
            "entry": entry,
            "canonical": row.data.decode("utf-8", "replace"),
            "results": [r for r in entry.get("results") or () if isinstance(r, dict)],
            "exceptions": [(str(n), known.get(str(n))) for n in entry.get("exceptions") or ()],
            "now": self.now(),
        }
        return self._fragment("decision_data.html", context)

    def policies(self, request: Request) -> Response:
        since, until = params.time_range(request.query_params, self.now())
        summary = aggregates.policy_summary(self.log, since, until)
        context = {"summary": summary, "chart": policy_chart(summary), "since": since, "until": until}
        return self._fragment("policies_data.html", context)

    def exception_page(self, request: Request) -> Response:
        since, until = params.time_range(request.query_params, self.now())
        uses, low = aggregates.exception_uses(self.log, since, until, self.exceptions)
        now = self.now()
        context = {"uses": uses, "low": low, "now": now, "since": since, "until": until}
        return self._fragment("exceptions_data.html", context)

    def log_page(self, request: Request) -> Response:
        return self._fragment("log_data.html", self.status.describe(self.log))
