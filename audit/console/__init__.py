"""The auditors' console: read-only web pages over the audit log, beside the auditors' API.

``Console(log, cap=...)`` gives the routes (page shells, data fragments behind the API's bearer tokens,
static files under ``/console/static/``); ``is_public(path)`` names the paths served without a token
(shells and static files, which hold nothing from the log). ``audit.api.create_app`` mounts it.
"""

from __future__ import annotations

from audit.console.aggregates import ExceptionInfo
from audit.console.app import Console, is_public
from audit.console.logstatus import LogStatus
from audit.console.security import RateLimit

__all__ = ["Console", "ExceptionInfo", "LogStatus", "RateLimit", "is_public"]
