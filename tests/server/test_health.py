from fastapi.testclient import TestClient

from tests.support.app import QWQ, R1
from tests.support.fake_engine import FakeEngine


def test_healthy(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["models"][QWQ] == {
        "healthy": True,
        "running_requests": 0,
        "waiting_requests": 0,
        "context_window": 24000,
    }
    assert response.json()["models"][R1]["context_window"] == 80000


def test_one_dead_engine_is_503(client: TestClient, engines: dict[str, FakeEngine]) -> None:
    engines[R1].healthy = False

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["models"][R1]["healthy"] is False
    assert response.json()["models"][QWQ]["healthy"] is True


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
