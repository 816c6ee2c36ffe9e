"""deploy/monitoring against a real ``serve``: every metric the Grafana dashboard and the alert rules query
is exported by a running webhook (TLS, an audit log, the cluster inventory of a fake API server, a
background scan, reloads that succeed, shrink and fail, admissions allowed, denied and refused), with
the labels the queries group and filter by, and each used as its type allows (rate() over counters and
histogram buckets, histogram_quantile over buckets); the dashboard's structure as Grafana imports it;
and the ServiceMonitor pointing at the Service's port with the TLS settings the certificate satisfies.

``policyengine_tls_certificate_expiry_seconds`` (the serving certificate's time left) is asserted like
every other metric: it is exported by the certificate-reload code of ``serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_serve import Server, _cli, _start, _stop
from tests.promql import Reads, label_values, reads
from tests.unit.webhook.builders import pod, review
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig
from webhook.prometheus import parse_samples

pytestmark = pytest.mark.e2e

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DEPLOY = MONITORING.parent
HANG_GUARD = 60.0  # seconds: fails a stuck wait with the server's log, never a timing assertion
# The labels the Prometheus Operator gives every target of a ServiceMonitor. A metric's own label of the
# same name is kept as exported_<name> (honorLabels: false).
TARGET_LABELS = frozenset({"namespace", "pod", "service", "job", "instance", "endpoint", "container"})
PROMETHEUS_OWN = frozenset({"up"})  # series Prometheus makes for each target: alert rules may read them
RATED = frozenset({"rate", "irate", "increase"})
EXTRA_POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: pods-named}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "object.metadata.name != ''"
      message: a pod needs a name
"""


@dataclass
class Exported:
    """One scrape of /metrics: each sample name with its type and the label names it carries."""

    types: dict[str, str]
    labels: dict[str, set[str]]

    def type_of(self, name: str) -> str:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name.removesuffix(suffix)) == "histogram":
                return "histogram"
        return self.types.get(name, "untyped")


def parse(text: str) -> Exported:
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
    labels: dict[str, set[str]] = {}
    for name, sample_labels, _ in parse_samples(text):
        labels.setdefault(name, set()).update(sample_labels)
    return Exported(types, labels)


# -- a serve that has exercised every code path the dashboard shows ------------------------------------


def _until(server: Server, what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"never saw {what}:\n{server.stderr.read_text()[-4000:]}"
        time.sleep(0.1)


def _has(client: httpx.Client, name: str, **labels: str) -> bool:
    return any(
        n == name and labels.items() <= ls.items() for n, ls, _ in parse_samples(client.get("/metrics").text)
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    tmp = tmp_path_factory.mktemp("monitoring")
    certs = tmp / "tls"
    _cli("certs", "--out", str(certs), "--dns", "localhost", "--dns", "127.0.0.1")
    keys = tmp / "keys"
    _cli("audit", "keygen", "--origin", "e2e.example/monitoring", "--out", str(keys))
    fake = FakeAPIServer()
    url = fake.start()
    fake.serve_openreports()  # the background scan's reports have somewhere to go
    fake.put("namespaces", "apps")
    fake.put("pods", "running", "apps", spec={"containers": [{"name": "c", "image": "x:latest"}]})
    server = _start(
        tmp, certs,
        "--kube", "--kubeconfig", str(kubeconfig(tmp / "kubeconfig", url)),
        "--background-interval", "1s",
        "--audit-log", str(tmp / "audit.db"), "--audit-key", str(keys / "audit.key"),
    )  # fmt: skip
    try:
        with server.client() as client:
            for n in range(3):
                denied = client.post("/validate", json=review(pod(image="x:latest"), uid=f"deny-{n}"))
                allowed = client.post("/validate", json=review(pod(labels={"team": "t"}), uid=f"allow-{n}"))
                assert denied.json()["response"]["allowed"] is False
                assert allowed.json()["response"]["allowed"] is True
            refused = client.post(
                "/validate", content=b"{not json", headers={"content-type": "application/json"}
            )
            assert refused.status_code == 400
            # Reloads: one that adds a policy, one that loses it (a shrink), one that fails.
            extra = server.policies / "extra.yaml"
            extra.write_text(EXTRA_POLICY)
            _until(
                server,
                "a successful reload",
                lambda: _has(client, "policyengine_reloads_total", result="success"),
            )
            extra.unlink()
            _until(
                server,
                "a shrink",
                lambda: _has(client, "policyengine_policy_set_shrinks_total", result="applied"),
            )
            (server.policies / "broken.yaml").write_text("kind: [\n")
            _until(server, "a failed reload", lambda: _has(client, "policyengine_reload_failures_total"))
            _until(server, "background violations", lambda: _has(client, "policyengine_violations"))
            # Scraped as the ServiceMonitor does: HTTPS, the certificate checked against the CA.
            yield parse(client.get("/metrics").text)
    finally:
        _stop(server)
        fake.stop()


# -- the queries ----------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "policyengine-dashboard.json").read_text())


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target."""
    return [
        (f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
        for p in dashboard()["panels"]
        for t in p.get("targets", [])
    ]


def rule_queries() -> list[tuple[str, str]]:
    (rules,) = yaml.safe_load_all((MONITORING / "prometheusrule.yaml").read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in rules["spec"]["groups"] for r in g["rules"]]


def problems(
    where: str, expr: str, exported: Exported, allowed_own: frozenset[str] = frozenset()
) -> list[str]:
    """What in ``expr`` a running serve does not back: metrics it does not export, labels none of the
    expression's metrics carry, counters read without rate(), gauges under rate(), quantiles of non-buckets."""
    found: Reads = reads(expr)
    out = []
    carried = set(TARGET_LABELS)
    for name, calls in found.metrics:
        if name in allowed_own:
            continue
        if name not in exported.labels:
            out.append(f"{where}: {name} is not exported")
            continue
        own = exported.labels[name]
        carried |= own | {f"exported_{label}" for label in own & TARGET_LABELS}
        kind = exported.type_of(name)
        rated = bool(RATED & set(calls))
        if rated and kind not in ("counter", "histogram"):
            out.append(f"{where}: {name} is a {kind}, read with rate()/increase()")
        if kind == "counter" and not rated:
            out.append(f"{where}: {name} is a counter, read without rate()/increase()")
        if "histogram_quantile" in calls and not (kind == "histogram" and name.endswith("_bucket")):
            out.append(f"{where}: histogram_quantile over {name}, not a histogram's buckets")
    out += [f"{where}: no metric of the query carries the label {label}" for label in found.labels - carried]
    if not found.metrics:
        out.append(f"{where}: reads no metric")
    return out


def test_every_dashboard_query_reads_what_serve_exports(exported: Exported) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    found = [p for where, expr in queries for p in problems(where, expr, exported)]
    assert found == []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, label = label_values(variable["query"]["query"])
        assert variable["definition"] == variable["query"]["query"]
        (metric,) = reads(selector).names  # label_values reads the series' labels, not their values
        assert metric in exported.labels, f"variable {variable['name']}: {metric} is not exported"
        assert reads(selector).labels | {label} <= TARGET_LABELS | exported.labels[metric]


def test_every_alert_reads_what_serve_exports(exported: Exported) -> None:
    found = [p for where, expr in rule_queries() for p in problems(where, expr, exported, PROMETHEUS_OWN)]
    assert found == []


def test_the_dashboard_covers_what_operators_need(exported: Exported) -> None:
    """The panels the deployment promises: admissions by verdict, latency percentiles, denials by
    policy, the audit log, reloads, the certificate and the background scan."""
    read = {name for _, expr in dashboard_queries() for name in reads(expr).names}
    assert {
        "policyengine_admission_requests_total",
        "policyengine_request_duration_seconds_bucket",
        "policyengine_decisions_total",
        "policyengine_audit_append_duration_seconds_bucket",
        "policyengine_audit_queue_depth",
        "policyengine_reloads_total",
        "policyengine_reload_failures_total",
        "policyengine_tls_certificate_expiry_seconds",
        "policyengine_violations",
    } <= read
    quantiles = [
        expr for _, expr in dashboard_queries() if "policyengine_request_duration_seconds_bucket" in expr
    ]
    assert {expr.split(",")[0] for expr in quantiles} >= {
        "histogram_quantile(0.5",
        "histogram_quantile(0.9",
        "histogram_quantile(0.99",
    }


# -- structure --------------------------------------------------------------------------------------------


def test_the_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: dict[tuple[int, int], int] = {}
    for p in board["panels"]:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {p['id']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['id']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]


def _one(path: Path) -> dict[str, Any]:
    (doc,) = yaml.safe_load_all(path.read_text())
    return doc  # type: ignore[no-any-return]


def test_the_servicemonitor_scrapes_the_service_port_over_verified_https() -> None:
    monitor = _one(MONITORING / "servicemonitor.yaml")
    service = _one(DEPLOY / "service.yaml")
    deployment = _one(DEPLOY / "deployment.yaml")
    pods = deployment["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in pods["volumes"]}["tls"]["secret"]["secretName"]
    certificates = yaml.safe_load_all((DEPLOY / "cert-manager" / "certificate.yaml").read_text())
    (certificate,) = [
        d for d in certificates if d["kind"] == "Certificate" and d["spec"]["secretName"] == mounted
    ]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = spec["endpoints"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert endpoint["port"] in ports
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert ports[endpoint["port"]]["targetPort"] in {p["name"] for p in container["ports"]}
    assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics"
    assert endpoint.get("honorLabels", False) is False  # the dashboard reads exported_namespace
    tls = endpoint["tlsConfig"]
    assert "insecureSkipVerify" not in tls
    assert tls["serverName"] in certificate["spec"]["dnsNames"]
    assert tls["ca"]["secret"] == {"name": certificate["spec"]["secretName"], "key": "ca.crt"}


def test_every_alert_is_complete() -> None:
    rules = _one(MONITORING / "prometheusrule.yaml")
    alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
    names = [r["alert"] for r in alerts]
    assert len(names) == len(set(names)) and len(names) >= 8
    for rule in alerts:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_the_query_checks_catch_what_a_dashboard_gets_wrong() -> None:
    """The checks above on made-up queries: a typo, a gauge under rate(), a raw counter, a quantile of a
    sum, a label no metric carries."""
    scrape = parse(
        '# TYPE policyengine_x_total counter\npolicyengine_x_total{verdict="allowed"} 1\n'
        "# TYPE policyengine_depth gauge\npolicyengine_depth 0\n"
        '# TYPE policyengine_d_seconds histogram\npolicyengine_d_seconds_bucket{le="+Inf"} 1\n'
        "policyengine_d_seconds_sum 0.1\npolicyengine_d_seconds_count 1\n"
    )
    assert problems("q", 'sum by (verdict) (rate(policyengine_x_total{pod=~"$pod"}[5m]))', scrape) == []
    assert problems("q", "rate(policyengine_x_totl[5m])", scrape) == [
        "q: policyengine_x_totl is not exported"
    ]
    assert problems("q", "rate(policyengine_depth[5m])", scrape) == [
        "q: policyengine_depth is a gauge, read with rate()/increase()"
    ]
    assert problems("q", "sum(policyengine_x_total)", scrape) == [
        "q: policyengine_x_total is a counter, read without rate()/increase()"
    ]
    assert problems("q", "histogram_quantile(0.9, rate(policyengine_d_seconds_sum[5m]))", scrape) == [
        "q: histogram_quantile over policyengine_d_seconds_sum, not a histogram's buckets"
    ]
    assert problems("q", "sum by (verdit) (rate(policyengine_x_total[5m]))", scrape) == [
        "q: no metric of the query carries the label verdit"
    ]
    assert problems("q", "vector(1)", scrape) == ["q: reads no metric"]
