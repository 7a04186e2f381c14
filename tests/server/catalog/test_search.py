"""`GET .../ai/models/search`: the served models as Workers AI's catalog lists them, filtered and
paged so that every client's paging loop ends."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.app import AUTH, QWQ, R1, ClientFactory, served
from tests.support.envelopes import assert_error

# Far more requests than two models can need: a paging loop that gets here would never end.
PAGING_GUARD = 20

TEXT_GENERATION = {
    "id": "c329a1f9-323d-4e91-b2aa-582dd4188d34",
    "name": "Text Generation",
    "description": "Family of generative text models, such as large language models (LLM), "
    "that can be adapted for a variety of natural language tasks.",
}

QWQ_ENTRY = {
    "id": "02c16efa-29f5-4304-8e6c-3d188889f875",
    "source": 1,
    "name": QWQ,
    "description": "QwQ is the reasoning model of the Qwen series. Compared with conventional "
    "instruction-tuned models, QwQ, which is capable of thinking and reasoning, can achieve "
    "significantly enhanced performance in downstream tasks, especially hard problems. QwQ-32B "
    "is the medium-sized reasoning model, which is capable of achieving competitive performance "
    "against state-of-the-art reasoning models, e.g., DeepSeek-R1, o1-mini.",
    "task": TEXT_GENERATION,
    "created_at": "2025-03-05 21:52:40.974",
    "tags": [],
    "properties": [
        {"property_id": "context_window", "value": "24000"},
        {
            "property_id": "price",
            "value": [
                {"unit": "per M input tokens", "price": 0.66, "currency": "USD"},
                {"unit": "per M output tokens", "price": 1, "currency": "USD"},
            ],
        },
        {"property_id": "lora", "value": "false"},
    ],
}

R1_ENTRY = {
    "id": "ad01ab83-baf8-4e7b-8fed-a0a219d4eb45",
    "source": 1,
    "name": R1,
    "description": "DeepSeek-R1-Distill-Qwen-32B is a model distilled from DeepSeek-R1 based on "
    "Qwen2.5. It outperforms OpenAI-o1-mini across various benchmarks, achieving new "
    "state-of-the-art results for dense models.",
    "task": TEXT_GENERATION,
    "created_at": "2025-01-22 19:48:55.776",
    "tags": [],
    "properties": [
        {"property_id": "context_window", "value": "80000"},
        {
            "property_id": "price",
            "value": [
                {"unit": "per M input tokens", "price": 0.497, "currency": "USD"},
                {"unit": "per M output tokens", "price": 4.881, "currency": "USD"},
            ],
        },
        {"property_id": "lora", "value": "false"},
        {"property_id": "reasoning", "value": "true"},
        {
            "property_id": "terms",
            "value": "https://github.com/deepseek-ai/DeepSeek-R1/blob/main/LICENSE",
        },
    ],
}


def search_url(query: str = "", account: str = "acct", prefix: str = "/client/v4") -> str:
    return f"{prefix}/accounts/{account}/ai/models/search" + (f"?{query}" if query else "")


def search(client: TestClient, query: str = "") -> Any:
    response = client.get(search_url(query), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def names(payload: Any) -> list[str]:
    return [entry["name"] for entry in payload["result"]]


def properties(entry: dict[str, Any]) -> dict[str, Any]:
    return {item["property_id"]: item["value"] for item in entry["properties"]}


# --- shapes ---


def test_search_envelope(client: TestClient) -> None:
    payload = search(client)

    assert payload["success"] is True
    assert payload["errors"] == []
    assert payload["messages"] == []
    assert payload["result_info"] == {"page": 1, "per_page": 20, "count": 2, "total_count": 2}


def test_entries_are_listed_by_name(client: TestClient) -> None:
    assert names(search(client)) == [R1, QWQ]


@pytest.mark.parametrize(
    ("model", "expected"), [(QWQ, QWQ_ENTRY), (R1, R1_ENTRY)], ids=["qwq", "r1"]
)
def test_entry_is_workers_ai_shaped(
    make_client: ClientFactory, model: str, expected: dict[str, Any]
) -> None:
    client = make_client(models=[served(model)])

    assert search(client)["result"] == [expected]


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_context_window_is_the_served_window(make_client: ClientFactory, model: str) -> None:
    client = make_client(models=[served(model, max_model_len=8192)])

    assert properties(search(client)["result"][0])["context_window"] == "8192"


@pytest.mark.parametrize("lora", [True, False], ids=["enabled", "disabled"])
@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_lora_property_follows_the_engine(
    make_client: ClientFactory, model: str, lora: bool
) -> None:
    client = make_client(models=[served(model, lora=lora)])

    assert properties(search(client)["result"][0])["lora"] == ("true" if lora else "false")


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_string_properties_are_strings(client: TestClient, model: str) -> None:
    entry = next(entry for entry in search(client)["result"] if entry["name"] == model)

    values = properties(entry)
    assert all(isinstance(value, str) for key, value in values.items() if key != "price")


@pytest.mark.parametrize("model", [QWQ, R1], ids=["qwq", "r1"])
def test_only_served_models_are_listed(make_client: ClientFactory, model: str) -> None:
    client = make_client(models=[served(model)])

    payload = search(client)

    assert names(payload) == [model]
    assert payload["result_info"]["total_count"] == 1


def test_route_without_client_v4_prefix(client: TestClient) -> None:
    response = client.get(search_url(prefix=""), headers=AUTH)

    assert response.status_code == 200
    assert names(response.json()) == [R1, QWQ]


# --- filters ---


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=qwq", [QWQ]),
        ("search=QwQ-32B", [QWQ]),
        ("search=DISTILLED", [R1]),
        ("search=reasoning%20model", [QWQ]),
        ("search=32b", [R1, QWQ]),
        ("search=llama", []),
        ("task=Text%20Generation", [R1, QWQ]),
        ("task=text%20generation", [R1, QWQ]),
        ("task=c329a1f9-323d-4e91-b2aa-582dd4188d34", [R1, QWQ]),
        ("task=Text%20Classification", []),
        ("author=qwen", [QWQ]),
        ("author=deepseek-ai", [R1]),
        ("author=Qwen", [QWQ]),
        ("author=meta", []),
        ("source=1", [R1, QWQ]),
        ("source=2", []),
        ("hide_experimental=true", [R1, QWQ]),
        ("hide_experimental=false", [R1, QWQ]),
        ("author=qwen&search=distilled", []),
        ("search=", [R1, QWQ]),
        ("unknown=1", [R1, QWQ]),
    ],
    ids=[
        "search-name",
        "search-name-case",
        "search-description-case",
        "search-description-phrase",
        "search-both",
        "search-none",
        "task-name",
        "task-name-case",
        "task-id",
        "task-other",
        "author-qwen",
        "author-deepseek",
        "author-case",
        "author-other",
        "source-1",
        "source-other",
        "hide-experimental",
        "show-experimental",
        "filters-combine",
        "empty-search-ignored",
        "unknown-param-ignored",
    ],
)
def test_filters(client: TestClient, query: str, expected: list[str]) -> None:
    payload = search(client, query)

    assert names(payload) == expected
    assert payload["result_info"]["total_count"] == len(expected)


# --- paging ---


def test_page_past_the_end_is_empty(client: TestClient) -> None:
    payload = search(client, "page=2")

    assert payload["result"] == []
    assert payload["result_info"] == {"page": 2, "per_page": 20, "count": 0, "total_count": 2}


@pytest.mark.parametrize(
    ("query", "expected", "info"),
    [
        ("per_page=1", [R1], {"page": 1, "per_page": 1, "count": 1, "total_count": 2}),
        ("per_page=1&page=2", [QWQ], {"page": 2, "per_page": 1, "count": 1, "total_count": 2}),
        ("per_page=1&page=3", [], {"page": 3, "per_page": 1, "count": 0, "total_count": 2}),
        ("per_page=1000", [R1, QWQ], {"page": 1, "per_page": 1000, "count": 2, "total_count": 2}),
        (
            "per_page=1&author=qwen",
            [QWQ],
            {"page": 1, "per_page": 1, "count": 1, "total_count": 1},
        ),
    ],
    ids=["first", "second", "past-end", "max-per-page", "filtered"],
)
def test_per_page_is_honoured(
    client: TestClient, query: str, expected: list[str], info: dict[str, int]
) -> None:
    payload = search(client, query)

    assert names(payload) == expected
    assert payload["result_info"] == info


@pytest.mark.parametrize("per_page", [None, 1, 2, 50], ids=["default", "1", "2", "50"])
def test_sdk_paging_ends_with_each_model_once(client: TestClient, per_page: int | None) -> None:
    # The `cloudflare` SDKs ask for page 1, 2, ... until a page comes back empty.
    seen: list[str] = []
    for page in range(1, PAGING_GUARD):
        size = "" if per_page is None else f"&per_page={per_page}"
        result = names(search(client, f"page={page}{size}"))
        if not result:
            break
        seen += result
    else:
        pytest.fail("paging never reached an empty page")

    assert sorted(seen) == sorted([QWQ, R1])


@pytest.mark.parametrize("page_size", [50, 2, 1], ids=["wrangler-50", "full-page", "one"])
def test_wrangler_paging_ends_with_each_model_once(client: TestClient, page_size: int) -> None:
    # wrangler's `aiCatalogList`: ask `per_page=50&page=N` while the total so far is a multiple
    # of the page size, and stop at a short page. A server ignoring `page` and answering a full
    # page every time would keep it looping.
    results: list[str] = []
    page = 1
    requests = 0
    while len(results) % page_size == 0:
        requests += 1
        assert requests < PAGING_GUARD, "wrangler would loop forever"
        batch = names(search(client, f"per_page={page_size}&page={page}"))
        page += 1
        results += batch
        if len(batch) < page_size:
            break

    assert sorted(results) == sorted([QWQ, R1])


# --- errors ---


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("per_page=0", "'per_page'"),
        ("per_page=1001", "'per_page'"),
        ("per_page=-5", "'per_page'"),
        ("per_page=abc", "'per_page'"),
        ("per_page=2.5", "'per_page'"),
        ("page=0", "'page'"),
        ("page=-1", "'page'"),
        ("page=x", "'page'"),
        ("source=one", "'source'"),
        ("hide_experimental=maybe", "'hide_experimental'"),
    ],
    ids=[
        "per-page-zero",
        "per-page-over-max",
        "per-page-negative",
        "per-page-text",
        "per-page-fraction",
        "page-zero",
        "page-negative",
        "page-text",
        "source-text",
        "hide-experimental-text",
    ],
)
def test_bad_query_values_are_5006(client: TestClient, query: str, fragment: str) -> None:
    response = client.get(search_url(query), headers=AUTH)

    assert_error(response, 400, 5006, "AiError: Bad input: Error: query parameter", fragment)


def test_search_requires_a_token(client: TestClient) -> None:
    response = client.get(search_url())

    assert_error(response, 401, 10000, "Authentication error")


def test_token_is_checked_before_the_query(client: TestClient) -> None:
    response = client.get(search_url("per_page=0"))

    assert_error(response, 401, 10000, "Authentication error")


def test_unserved_account_is_7003(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["abc123"])

    response = client.get(search_url(account="other"), headers=AUTH)

    assert_error(
        response, 404, 7003, "Could not route to /client/v4/accounts/other/ai/models/search"
    )


def test_served_account_is_listed(make_client: ClientFactory) -> None:
    client = make_client(account_ids=["abc123"])

    response = client.get(search_url(account="abc123"), headers=AUTH)

    assert response.status_code == 200


def test_post_is_7001(client: TestClient) -> None:
    response = client.post(search_url(), headers=AUTH)

    assert_error(response, 405, 7001, "POST not supported for requested URI.")
