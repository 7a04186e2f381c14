"""Workers AI's model catalog routes: `GET .../ai/models/search` and `GET .../ai/models/schema`.

Mounted, like the run route, with and without the `/client/v4` prefix, behind the same token
and account checks.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from server.catalog.search import SearchQuery, parse_search_query, with_swap_states
from server.errors import success_envelope
from server.http.state import AuthorizedAccount, Served, ServedCatalog

router = APIRouter(dependencies=[AuthorizedAccount])

# Declared as strings so that a bad value is refused by `parse_search_query` with a message
# naming the parameter, rather than by FastAPI's generic validation error.
OptionalParam = Annotated[str | None, Query()]


async def get_search_query(
    page: OptionalParam = None,
    per_page: OptionalParam = None,
    search: OptionalParam = None,
    task: OptionalParam = None,
    author: OptionalParam = None,
    source: OptionalParam = None,
    hide_experimental: OptionalParam = None,
) -> SearchQuery:
    return parse_search_query(
        {
            "page": page,
            "per_page": per_page,
            "search": search,
            "task": task,
            "author": author,
            "source": source,
            "hide_experimental": hide_experimental,
        }
    )


CatalogSearch = Annotated[SearchQuery, Depends(get_search_query)]


@router.get("/accounts/{account_id}/ai/models/search")
async def search_models(
    query: CatalogSearch, catalog: ServedCatalog, serving: Served
) -> JSONResponse:
    page = catalog.search(query)
    models = serving.generation.models
    states = {name: (await model.engine.status()).swap for name, model in models.items()}
    entries = with_swap_states(page.entries, states)
    return JSONResponse({**success_envelope(entries), "result_info": page.result_info()})


@router.get("/accounts/{account_id}/ai/models/schema")
async def model_schema(catalog: ServedCatalog, model: OptionalParam = None) -> JSONResponse:
    return JSONResponse(success_envelope(catalog.schema(model)))
