"""Finding 9: metric labels are bounded whatever clients send; metrics and readiness detail are
for operators."""

from __future__ import annotations

OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}


def _other_method_count(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("http_server_requests_total") and 'method="OTHER"' in line
    )


def test_made_up_methods_share_one_label(client):
    before = _other_method_count(client.get("/metrics").get_data(as_text=True))
    for i in range(50):
        client.open("/healthz", method=f"FOO{i}")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "FOO" not in metrics
    assert _other_method_count(metrics) - before == 50


def test_metrics_answer_operators_only(client):
    assert client.get("/metrics").status_code == 200  # loopback: the host's Prometheus
    outside = client.get("/metrics", environ_base=OUTSIDE)
    assert outside.status_code == 403
    assert outside.get_json()["error"]["code"] == "operators_only"


def test_readiness_details_are_for_operators(client):
    assert "checks" in client.get("/readyz").get_json()
    public = client.get("/readyz", environ_base=OUTSIDE)
    assert public.status_code == 200 and public.get_json() == {"status": "ok"}


def test_readiness_failure_names_nothing_to_the_public(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    public = client.get("/readyz", environ_base=OUTSIDE)
    assert public.status_code == 503 and public.get_json()["error"]["details"] == {}
    assert "redis" not in public.get_data(as_text=True).lower()
    operator = client.get("/readyz")
    assert operator.get_json()["error"]["details"]["checks"]["redis"] == "unreachable"
