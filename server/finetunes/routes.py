"""Workers AI's finetune routes: create and list finetunes, upload their LoRA assets.

Mounted, like the run route, with and without the `/client/v4` prefix, behind the same token
and account checks; each also answers with a trailing slash, as Cloudflare's curl examples send.
Storage and rules: `server.finetunes.store`; wire shapes: `server.finetunes.schemas`.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from server.errors import ClientDisconnected, success_envelope
from server.finetunes.schemas import PublicQuery, parse_create, parse_public_query
from server.finetunes.uploads import upload_asset
from server.http.body import read_json
from server.http.state import AuthorizedAccount, FinetuneRegistry

router = APIRouter(dependencies=[AuthorizedAccount])

FINETUNES = "/accounts/{account_id}/ai/finetunes"
ASSETS = FINETUNES + "/{finetune}/finetune-assets"

OptionalParam = Annotated[str | None, Query()]


async def get_public_query(
    limit: OptionalParam = None,
    offset: OptionalParam = None,
    order_by: Annotated[str | None, Query(alias="orderBy")] = None,
) -> PublicQuery:
    return parse_public_query({"limit": limit, "offset": offset, "orderBy": order_by})


PublicListing = Annotated[PublicQuery, Depends(get_public_query)]


@router.post(FINETUNES)
@router.post(FINETUNES + "/", include_in_schema=False)
async def create_finetune(
    account_id: str, request: Request, finetunes: FinetuneRegistry
) -> JSONResponse:
    body = parse_create(await read_json(request))
    record = await asyncio.to_thread(finetunes.create, account_id, body)
    return JSONResponse(success_envelope(record.created()))


@router.get(FINETUNES)
@router.get(FINETUNES + "/", include_in_schema=False)
async def list_finetunes(account_id: str, finetunes: FinetuneRegistry) -> JSONResponse:
    records = await asyncio.to_thread(finetunes.of_account, account_id)
    return JSONResponse(success_envelope([record.listed() for record in records]))


@router.get(FINETUNES + "/public")
@router.get(FINETUNES + "/public/", include_in_schema=False)
async def list_public_finetunes(query: PublicListing, finetunes: FinetuneRegistry) -> JSONResponse:
    records = await asyncio.to_thread(finetunes.public, query)
    return JSONResponse(success_envelope([record.created() for record in records]))


@router.post(ASSETS)
@router.post(ASSETS + "/", include_in_schema=False)
async def upload_finetune_asset(
    account_id: str, finetune: str, request: Request, finetunes: FinetuneRegistry
) -> JSONResponse:
    content_type = request.headers.get("content-type")
    asset = await upload_asset(finetunes, account_id, finetune, content_type, body(request))
    return JSONResponse(success_envelope(asset))


async def body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that leaves ends the upload."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise ClientDisconnected() from None
