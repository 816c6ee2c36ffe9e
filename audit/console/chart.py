"""The policies chart as server-rendered SVG: one small panel per policy, denies and warnings per time
bucket as stacked bars. No script and no chart library to ship: the page works under a CSP without
scripts for it, in an air-gapped cluster, and the numbers are also in a table beside it."""

from __future__ import annotations

from markupsafe import Markup, escape

from audit.console.aggregates import PolicySummary

WIDTH, PANEL, GAP, LABEL = 720, 56, 22, 18
MAX_PANELS = 12
DENY, WARN = "bar-deny", "bar-warn"  # colours and hatching in console.css (not colour alone)


def policy_chart(summary: PolicySummary) -> Markup:
    series = summary.series[:MAX_PANELS]
    if not series or not summary.buckets:
        return Markup("")
    n = len(summary.buckets)
    step = WIDTH / n
    bar = max(1.0, step * 0.8)
    top = max(max((s.denies[b] + s.warnings[b]) for b in summary.buckets) for s in series) or 1
    height = len(series) * (PANEL + GAP + LABEL) + LABEL
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Denies and warnings per policy over time</title>',
        f'<desc id="chart-desc">{len(series)} policies, {n} buckets from {escape(summary.buckets[0])} '
        f"to {escape(summary.buckets[-1])}; the table below holds the same numbers.</desc>",
    ]
    y = 0
    for item in series:
        y += LABEL
        total_d, total_w = item.denies.total(), item.warnings.total()
        parts.append(
            f'<text x="0" y="{y - 5}" class="chart-label">{escape(item.policy)}: '
            f"{total_d} denied, {total_w} warned</text>"
        )
        parts.append(f'<line x1="0" y1="{y + PANEL}" x2="{WIDTH}" y2="{y + PANEL}" class="axis"/>')
        for i, label in enumerate(summary.buckets):
            d, w = item.denies[label], item.warnings[label]
            x = i * step
            hd, hw = PANEL * d / top, PANEL * w / top
            if d:
                parts.append(_rect(x, y + PANEL - hd, bar, hd, DENY, f"{label}: {d} denied"))
            if w:
                parts.append(_rect(x, y + PANEL - hd - hw, bar, hw, WARN, f"{label}: {w} warned"))
        y += PANEL + GAP
    parts.append(f'<text x="0" y="{height - 4}" class="chart-label">{escape(summary.buckets[0])}</text>')
    parts.append(
        f'<text x="{WIDTH}" y="{height - 4}" text-anchor="end" class="chart-label">'
        f"{escape(summary.buckets[-1])}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _rect(x: float, y: float, w: float, h: float, cls: str, title: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" class="{cls}">'
        f"<title>{escape(title)}</title></rect>"
    )
