"""Renderers of a CheckReport: one module per output format, each ``render(report, ...) -> str``."""

from __future__ import annotations
