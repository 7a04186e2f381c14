"""Workers AI's finetune wire shapes: the create request, the stored record and what each route
returns of it, the public listing's query.

    POST .../ai/finetunes           {model, name, description?, public?}
      -> {id, name, model, description, public, created_at, modified_at}
    GET  .../ai/finetunes
      -> [{id, name, model, description, created_at, modified_at}]
    GET  .../ai/finetunes/public
      -> [{id, name, model, description, public, created_at, modified_at}]
    POST .../ai/finetunes/{id or name}/finetune-assets     multipart: file_name, file
      -> {id, finetune_id, file_name, bucket_name, created_at, modified_at}

Times are ISO 8601 in UTC with milliseconds (`2025-03-05T21:52:40.974Z`), as in Cloudflare's
API reference; as strings they sort in time order.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import BadInput
from server.validation_errors import bad_input

MAX_DESCRIPTION = 4096
MAX_PUBLIC_LIMIT = 1000
BUCKET_NAME = "workers-ai-local"
"""What an asset reports as its `bucket_name` (Workers AI keeps assets in an R2 bucket)."""

OrderColumn = Literal["created_at", "modified_at", "name", "model", "id", "description"]


class FinetuneCreate(BaseModel):
    """The body of `POST .../ai/finetunes`. Unknown fields are ignored, as on `/ai/run`."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    model: str
    name: str
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    public: bool = False


class FinetuneRecord(BaseModel):
    """One finetune, as stored in its `finetune.json`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    account_id: str
    name: str
    model: str
    description: str | None
    public: bool
    created_at: str
    modified_at: str
    sequence: int = Field(
        default=0,
        description="Creation order, for finetunes created in the same millisecond; not shown.",
    )

    def created(self) -> dict[str, Any]:
        """The shape of a created (and of a public) finetune."""
        return self.model_dump(exclude={"account_id", "sequence"})

    def listed(self) -> dict[str, Any]:
        """The shape of an entry of the account's listing (without `public`)."""
        return self.model_dump(exclude={"account_id", "sequence", "public"})


class PublicQuery(BaseModel):
    """`GET .../ai/finetunes/public?limit=&offset=&orderBy=`: all by default, oldest first."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    limit: int | None = Field(default=None, ge=1, le=MAX_PUBLIC_LIMIT)
    offset: int = Field(default=0, ge=0)
    order_by: OrderColumn = Field(default="created_at", alias="orderBy")


def parse_create(body: Any) -> FinetuneCreate:
    """Raises BadInput (5006) naming the field."""
    if not isinstance(body, dict):
        raise BadInput("Type mismatch of '/', the body must be a JSON object")
    try:
        return FinetuneCreate.model_validate(body)
    except ValidationError as error:
        raise bad_input(error.errors(include_url=False)) from None


def parse_public_query(params: Mapping[str, str | None]) -> PublicQuery:
    """Parse `limit`, `offset` (whole numbers; the SDK may send `10.0`) and `orderBy`.

    Raises BadInput (5006) naming the parameter.
    """
    given: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or value == "":
            continue
        given[name] = _whole_number(name, value) if name in ("limit", "offset") else value
    try:
        return PublicQuery.model_validate(given)
    except ValidationError as error:
        raise bad_input(error.errors(include_url=False), source="query") from None


def asset_entry(finetune_id: str, asset_id: str, file_name: str, at: str) -> dict[str, Any]:
    return {
        "id": asset_id,
        "finetune_id": finetune_id,
        "file_name": file_name,
        "bucket_name": BUCKET_NAME,
        "created_at": at,
        "modified_at": at,
    }


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _whole_number(name: str, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise BadInput(f"query parameter '{name}': {value!r} is not a number") from None
    if not number.is_integer():
        raise BadInput(f"query parameter '{name}': {value!r} is not a whole number")
    return int(number)
