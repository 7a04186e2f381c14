"""`/metrics` on the real server: our counters for the models asked, and vLLM's own metrics of
both engines, labelled with the Workers AI names."""

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import QWQ, R1, result
from tests.support.live_server import RunningServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: httpx.Client) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def scrape_until(api: httpx.Client, name: str, labels: dict[str, str]) -> Samples:
    """The metrics once `name{labels}` is above zero: a request is counted just after its
    response is sent, and vLLM records its stats as its outputs arrive, so the client can be a
    moment ahead of both."""
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(api)
        if samples.get((name, frozenset(labels.items())), 0) > 0 or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_request_shows_in_our_metrics_and_in_vllms(api: httpx.Client) -> None:
    for model in (QWQ, R1):
        result(api, model, prompt="Hi", max_tokens=3, temperature=0)

    ours = scrape_until(
        api,
        "workers_ai_local_requests_total",
        {"model": R1, "api": "workers_ai", "status": "200", "error_code": ""},
    )
    samples = scrape_until(api, "vllm:prompt_tokens_total", {"model_name": R1, "engine": "0"})

    for model in (QWQ, R1):
        labels = {"model": model, "api": "workers_ai", "status": "200", "error_code": ""}
        assert sample(ours, "workers_ai_local_requests_total", **labels) >= 1
        assert sample(ours, "workers_ai_local_completion_tokens_total", model=model) >= 1
        assert sample(ours, "workers_ai_local_time_to_first_token_seconds_count", model=model) >= 1
        for gauge in ("workers_ai_local_requests_running", "workers_ai_local_requests_waiting"):
            assert (gauge, frozenset({("model", model)})) in samples
        # Both engines' own metrics, each under its Workers AI name.
        assert sample(samples, "vllm:prompt_tokens_total", model_name=model, engine="0") >= 1
        assert (
            "vllm:num_requests_running",
            frozenset({("model_name", model), ("engine", "0")}),
        ) in samples


def test_metrics_need_the_token(server: RunningServer) -> None:
    response = httpx.get(server.url("/metrics"))

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 10000
