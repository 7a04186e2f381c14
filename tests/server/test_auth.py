"""Bearer tokens, account ids and the loopback rule."""

import pytest
from fastapi.testclient import TestClient

from server.auth import check_token_policy
from server.settings import ConfigError
from tests.support.app import AUTH, QWQ, ClientFactory, make_settings, run_url
from tests.support.envelopes import assert_error


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "test-token"},
        {"Authorization": "Basic test-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer test-token-and-more"},
    ],
    ids=["missing", "wrong", "no-scheme", "basic", "empty", "prefix-match"],
)
def test_bad_tokens_are_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(run_url(QWQ), json={"prompt": "a"}, headers=headers)

    assert_error(response, 401, 10000, "Authentication error")


def test_any_configured_token_is_accepted(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=["one", "two"])

    response = client.post(
        run_url(QWQ), json={"prompt": "a"}, headers={"Authorization": "Bearer two"}
    )

    assert response.status_code == 200


def test_no_tokens_configured_accepts_requests(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=[])

    assert client.post(run_url(QWQ), json={"prompt": "a"}).status_code == 200


def test_unknown_account_is_7003(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["abc123"])

    response = client.post(run_url(QWQ, account="other"), json={"prompt": "a"}, headers=AUTH)

    assert_error(
        response,
        404,
        7003,
        "Could not route to /client/v4/accounts/other/ai/run/@cf/qwen/qwq-32b, "
        "perhaps your object identifier is invalid?",
    )


def test_listed_account_is_served(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["abc123"])

    response = client.post(run_url(QWQ, account="abc123"), json={"prompt": "a"}, headers=AUTH)

    assert response.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_without_tokens_may_start(host: str) -> None:
    check_token_policy(make_settings(host=host, api_tokens=[]))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_other_addresses_without_tokens_refuse_to_start(host: str) -> None:
    with pytest.raises(ConfigError, match="without API tokens"):
        check_token_policy(make_settings(host=host, api_tokens=[]))


def test_other_addresses_with_tokens_may_start() -> None:
    check_token_policy(make_settings(host="0.0.0.0"))
