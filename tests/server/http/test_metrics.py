"""`GET /metrics`: what each request moves, by model, API, status and error code."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from engine.errors import EngineBusyError
from engine.vllm.metrics import live_engine_metrics
from server.http.metrics import route_family
from tests.support.app import AUTH, QWQ, R1, ClientFactory, run_url
from tests.support.fake_engine import FakeEngine
from tests.support.sse import parse_events

CHAT = "/client/v4/accounts/acct/ai/v1/chat/completions"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of `/metrics`, read with Prometheus' own text parser."""
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, model: str, api: str, status: int, error_code: str = "") -> float:
    return value(
        samples,
        "workers_ai_local_requests_total",
        model=model,
        api=api,
        status=str(status),
        error_code=error_code,
    )


def test_a_success_counts_its_request_tokens_and_timings_for_its_model(
    client: TestClient,
) -> None:
    response = client.post(run_url(QWQ), json={"prompt": "Hi", "raw": True}, headers=AUTH)

    assert response.status_code == 200
    usage = response.json()["result"]["usage"]
    samples = scrape(client)
    assert requests(samples, QWQ, "workers_ai", 200) == 1
    assert value(samples, "workers_ai_local_prompt_tokens_total", model=QWQ) == 2
    assert value(samples, "workers_ai_local_completion_tokens_total", model=QWQ) == 4
    assert usage["prompt_tokens"] == 2
    for histogram in ("time_to_first_token", "request_duration", "queue_wait"):
        name = f"workers_ai_local_{histogram}_seconds_count"
        assert value(samples, name, model=QWQ) == 1, histogram
        assert value(samples, name, model=R1) == 0, histogram
    # The first event comes after the request is handed to the engine, which is after it arrived.
    ttft = value(samples, "workers_ai_local_time_to_first_token_seconds_sum", model=QWQ)
    queue_wait = value(samples, "workers_ai_local_queue_wait_seconds_sum", model=QWQ)
    duration = value(samples, "workers_ai_local_request_duration_seconds_sum", model=QWQ)
    assert 0 < queue_wait <= ttft <= duration


def test_a_stream_counts_once_it_has_ended(client: TestClient) -> None:
    response = client.post(
        run_url(R1), json={"prompt": "Hi", "raw": True, "stream": True}, headers=AUTH
    )

    assert response.status_code == 200
    events, done = parse_events(response.text)
    assert done
    assert "usage" in events[-1]
    samples = scrape(client)
    assert requests(samples, R1, "workers_ai", 200) == 1
    assert value(samples, "workers_ai_local_completion_tokens_total", model=R1) == 4
    assert value(samples, "workers_ai_local_time_to_first_token_seconds_count", model=R1) == 1
    assert value(samples, "workers_ai_local_queue_wait_seconds_count", model=R1) == 1


def test_bad_input_counts_its_error_code_and_no_generation(client: TestClient) -> None:
    response = client.post(run_url(QWQ), json={"prompt": "Hi", "temperature": 9}, headers=AUTH)

    assert response.json()["errors"][0]["code"] == 5006
    samples = scrape(client)
    assert requests(samples, QWQ, "workers_ai", 400, "5006") == 1
    assert value(samples, "workers_ai_local_time_to_first_token_seconds_count", model=QWQ) == 0
    assert value(samples, "workers_ai_local_prompt_tokens_total", model=QWQ) == 0
    assert value(samples, "workers_ai_local_request_duration_seconds_count", model=QWQ) == 1


def test_a_busy_engine_counts_a_429_with_code_3040_on_the_openai_api(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].failure = EngineBusyError("queue full: 6 of 6")
    body = {"model": QWQ, "messages": [{"role": "user", "content": "Hi"}]}

    response = client.post(CHAT, json=body, headers=AUTH)

    assert response.status_code == 429
    samples = scrape(client)
    assert requests(samples, QWQ, "openai", 429, "3040") == 1
    assert requests(samples, QWQ, "workers_ai", 429, "3040") == 0


def test_a_model_not_served_is_counted_without_its_name(client: TestClient) -> None:
    response = client.post(run_url("@cf/no/such-model"), json={"prompt": "Hi"}, headers=AUTH)

    assert response.json()["errors"][0]["code"] == 5007
    samples = scrape(client)
    assert requests(samples, "", "workers_ai", 400, "5007") == 1
    assert not any(("model", "@cf/no/such-model") in labels for _, labels in samples), (
        "a client's model name would grow the label set"
    )


def test_other_routes_count_under_their_api(client: TestClient) -> None:
    client.get("/client/v4/accounts/acct/ai/models/search", headers=AUTH)
    client.get("/health")
    client.get("/no/such/path", headers=AUTH)

    samples = scrape(client)
    assert requests(samples, "", "catalog", 200) == 1
    assert requests(samples, "", "health", 200) == 1
    assert requests(samples, "", "other", 404, "7000") == 1


def test_running_and_waiting_requests_are_read_from_the_engines(
    client: TestClient, engines: dict[str, FakeEngine]
) -> None:
    engines[QWQ].running, engines[QWQ].waiting = 2, 3

    samples = scrape(client)

    assert value(samples, "workers_ai_local_requests_running", model=QWQ) == 2
    assert value(samples, "workers_ai_local_requests_waiting", model=QWQ) == 3
    assert value(samples, "workers_ai_local_requests_running", model=R1) == 0
    assert value(samples, "workers_ai_local_requests_waiting", model=R1) == 0


def test_metrics_need_a_token_when_tokens_are_configured(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/metrics", headers=headers)

        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == 10000


def test_metrics_are_open_without_tokens_on_loopback(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=[])

    response = client.get("/metrics")

    assert response.status_code == 200
    assert "workers_ai_local_requests_total" in response.text


def test_apps_in_one_process_count_apart(make_client: ClientFactory) -> None:
    first, second = make_client(), make_client()

    first.post(run_url(QWQ), json={"prompt": "Hi"}, headers=AUTH)

    assert requests(scrape(first), QWQ, "workers_ai", 200) == 1
    assert requests(scrape(second), QWQ, "workers_ai", 200) == 0


@pytest.fixture
def engine_registries() -> Iterator[list[CollectorRegistry]]:
    """Two engines' own registries, as the vLLM adapter gives each engine, while they live."""
    registries = [CollectorRegistry(), CollectorRegistry()]
    for registry, model in zip(registries, (QWQ, R1), strict=True):
        gauge = Gauge(
            "vllm:num_requests_running", "Running", ["model_name", "engine"], registry=registry
        )
        gauge.labels(model, "0").set(1)
        live_engine_metrics().add(registry)
    yield registries
    for registry in registries:
        live_engine_metrics().remove(registry)


def test_the_engines_own_metrics_follow_as_one_family(
    client: TestClient, engine_registries: list[CollectorRegistry]
) -> None:
    response = client.get("/metrics", headers=AUTH)

    families = [
        family
        for family in text_string_to_metric_families(response.text)
        if family.name == "vllm:num_requests_running"
    ]
    (family,) = families
    assert {sample.labels["model_name"] for sample in family.samples} == {QWQ, R1}


def test_an_engine_that_stopped_leaves_the_metrics(
    client: TestClient, engine_registries: list[CollectorRegistry]
) -> None:
    live_engine_metrics().remove(engine_registries[0])

    response = client.get("/metrics", headers=AUTH)

    assert f'model_name="{QWQ}"' not in response.text
    assert f'model_name="{R1}"' in response.text


@pytest.mark.parametrize(
    ("path", "family"),
    [
        (f"/client/v4/accounts/a/ai/run/{QWQ}", "workers_ai"),
        (f"/accounts/a/ai/run/{QWQ}", "workers_ai"),
        ("/client/v4/accounts/a/ai/run", "workers_ai"),
        (f"/v1/a/gw/workers-ai/{QWQ}", "workers_ai"),
        (f"/v1/a/gw/workers-ai/run/{QWQ}", "workers_ai"),
        ("/client/v4/accounts/a/ai/v1/chat/completions", "openai"),
        ("/accounts/a/ai/v1/completions", "openai"),
        ("/client/v4/accounts/a/ai/v1/models", "openai"),
        ("/v1/a/gw/workers-ai/v1/chat/completions", "openai"),
        ("/client/v4/accounts/a/ai/models/search", "catalog"),
        ("/accounts/a/ai/models/schema", "catalog"),
        ("/client/v4/accounts/a/ai/finetunes", "finetunes"),
        ("/client/v4/accounts/a/ai/finetunes/x/finetune-assets", "finetunes"),
        ("/health", "health"),
        ("/metrics", "other"),
        ("/no/such/path", "other"),
    ],
)
def test_route_families(path: str, family: str) -> None:
    assert route_family(path) == family
