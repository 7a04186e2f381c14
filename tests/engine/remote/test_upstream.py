"""The upstream's proxy, from the environment, read once per engine."""

import pytest

from engine.remote.upstream import proxy_for

PROXY = "http://proxy.internal:3128"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_no_proxy_variable_means_a_direct_connection() -> None:
    assert proxy_for("http://vllm-router:8000") is None


def test_the_proxy_of_the_url_scheme_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", PROXY)

    assert proxy_for("http://10.0.0.5:8000") == PROXY
    assert proxy_for("https://10.0.0.5:8443") is None


@pytest.mark.parametrize(
    "url", ["http://vllm-router:8000", "http://qwq.models.svc.cluster.local:8000"]
)
def test_hosts_in_no_proxy_are_reached_directly(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "vllm-router,.svc.cluster.local")

    assert proxy_for(url) is None
