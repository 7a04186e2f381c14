"""The model catalog of `/ai/models/search` and `/ai/models/schema`: the models this server
serves, as Workers AI's catalog describes them. No HTTP here.

Only served models are listed, and what a model's entry says is what this server serves: its
`context_window` is the bound engine's window (which may be smaller than Workers AI's), `lora` is
whether its engine has LoRA enabled.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.types import SwapState
from server.catalog.json_schema import model_schema
from server.errors import BadInput, NoSuchModel
from server.generation.registry import ServedModel
from server.generation.specs import ModelSpec
from server.validation_errors import bad_input

# Cloudflare caps `per_page` on its v4 list endpoints; this endpoint's cap and default are not
# published, so these are ours. Out-of-range values are refused (5006), never clamped: a client
# that asked for 5000 and silently got 1000 per page could stop paging early.
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 1000

# The only source Workers AI's catalog documents (`"source": 1`, Cloudflare's own models).
CLOUDFLARE_SOURCE = 1


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One served model: what Workers AI publishes, and what this server actually serves."""

    spec: ModelSpec
    context_window: int
    lora: bool


class SearchQuery(BaseModel):
    """The query parameters of `/ai/models/search`, parsed from their string form."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE)
    search: str | None = None
    task: str | None = None
    author: str | None = None
    source: float | None = None
    hide_experimental: bool = False


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of catalog entries, and where it sits in the whole result."""

    entries: list[dict[str, Any]]
    page: int
    per_page: int
    total_count: int

    def result_info(self) -> dict[str, int]:
        """Cloudflare v4 `result_info`: `count` is this page's length, `total_count` all
        matches."""
        return {
            "page": self.page,
            "per_page": self.per_page,
            "count": len(self.entries),
            "total_count": self.total_count,
        }


def parse_search_query(params: Mapping[str, str | None]) -> SearchQuery:
    """Parse query parameters (absent or empty ones take their defaults).

    Raises BadInput (5006) naming the parameter for a value of the wrong type or out of range.
    """
    given = {name: value for name, value in params.items() if value not in (None, "")}
    try:
        return SearchQuery.model_validate(given)
    except ValidationError as error:
        raise bad_input(error.errors(include_url=False), source="query") from None


class ModelCatalog:
    """The served models, searchable and paged; one model's schemas by name."""

    def __init__(self, models: Iterable[CatalogModel]) -> None:
        # A fixed order (by name) so that consecutive pages neither repeat nor skip a model.
        self._models = sorted(models, key=lambda model: model.spec.name)

    def search(self, query: SearchQuery) -> SearchPage:
        """The page `query.page` of the models matching every filter of `query`.

        A page past the end is empty, so clients that page until an empty or short page stop.
        """
        matches = [model for model in self._models if _matches(model, query)]
        start = (query.page - 1) * query.per_page
        page = matches[start : start + query.per_page]
        return SearchPage(
            entries=[catalog_entry(model) for model in page],
            page=query.page,
            per_page=query.per_page,
            total_count=len(matches),
        )

    def schema(self, name: str | None) -> dict[str, Any]:
        """`{"input", "output"}` JSON Schemas of a served model.

        Raises BadInput (5006) without a name, NoSuchModel (5007) for a model not served here.
        """
        if not name:
            raise BadInput("required query parameter 'model' is missing")
        for model in self._models:
            if model.spec.name == name:
                return model_schema(model.spec)
        raise NoSuchModel(name)


def served_catalog(models: Iterable[ServedModel]) -> ModelCatalog:
    """The catalog of the models an app serves: LoRA where a model has an adapter store."""
    return ModelCatalog(
        CatalogModel(
            spec=served.spec,
            context_window=served.context_window,
            lora=served.adapters is not None,
        )
        for served in models
    )


def catalog_entry(model: CatalogModel) -> dict[str, Any]:
    """A model as Workers AI's catalog lists it; property values are strings, except `price`
    (a list of `{unit, price, currency}`), as on Workers AI."""
    spec = model.spec
    properties: list[dict[str, Any]] = [
        {"property_id": "context_window", "value": str(model.context_window)},
        {
            "property_id": "price",
            "value": [
                {"unit": line.unit, "price": line.price, "currency": line.currency}
                for line in spec.price
            ],
        },
        {"property_id": "lora", "value": _flag(model.lora)},
    ]
    if spec.reasoning:
        properties.append({"property_id": "reasoning", "value": _flag(True)})
    if spec.terms is not None:
        properties.append({"property_id": "terms", "value": spec.terms})
    return {
        "id": spec.id,
        "source": CLOUDFLARE_SOURCE,
        "name": spec.name,
        "description": spec.description,
        "task": {
            "id": spec.task.id,
            "name": spec.task.name,
            "description": spec.task.description,
        },
        "created_at": spec.created_at,
        "tags": [],
        "properties": properties,
    }


def with_swap_states(
    entries: list[dict[str, Any]], states: Mapping[str, SwapState | None]
) -> list[dict[str, Any]]:
    """Entries of models in a swap group gain `swap_state` (`awake`, `asleep` or `waking`): a
    request for a model that is not awake waits for a swap first."""
    marked = []
    for entry in entries:
        swap = states.get(entry["name"])
        if swap is not None:
            state = {"property_id": "swap_state", "value": swap.state}
            entry = {**entry, "properties": [*entry["properties"], state]}
        marked.append(entry)
    return marked


def _matches(model: CatalogModel, query: SearchQuery) -> bool:
    spec = model.spec
    if query.search is not None:
        needle = query.search.casefold()
        if needle not in spec.name.casefold() and needle not in spec.description.casefold():
            return False
    if query.task is not None and query.task.casefold() not in (
        spec.task.name.casefold(),
        spec.task.id,
    ):
        return False
    if query.author is not None and query.author.casefold() != spec.author.casefold():
        return False
    # `hide_experimental` never hides anything: no model served here is experimental.
    return query.source is None or query.source == CLOUDFLARE_SOURCE


def _flag(value: bool) -> str:
    return "true" if value else "false"
