"""Finetune asset uploads: a multipart body streamed to disk, never held in memory.

    upload_asset(finetunes, account_id, ref, content_type, chunks) -> asset entry

The body (`file_name`, `file`, in either order) is parsed as it arrives; the file's bytes go
straight to a temporary file beside the finetune, counted against `max_file_bytes`. At the limit
reading stops and the answer is 413 (the server then closes the connection; clients built on
httpx/httpcore, and curl, still read that early answer). Then `Finetunes.add_asset` checks the
file and moves it into place; whatever happens, no temporary file stays behind.

Everything but the file's bytes is bounded, and reading stops with 400 (5006) past a bound:
MAX_PARTS parts, MAX_PART_HEADER_BYTES of headers per part, MAX_FIELD_BYTES of `file_name`,
MAX_IGNORED_BYTES of other fields (ignored, as unknown fields are elsewhere in the API, but
counted), and MAX_FORM_BYTES besides the file in all (boundaries, a preamble or an epilogue).
So a body that is not the file can neither fill memory nor keep the server reading.
"""

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from server.errors import BadInput, RequestTooLarge
from server.finetunes.layout import UPLOAD_PREFIX, UPLOAD_SUFFIX
from server.finetunes.store import Finetunes

FILE_FIELD = "file"
NAME_FIELD = "file_name"
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8
MAX_PART_HEADER_BYTES = 8 << 10
MAX_IGNORED_BYTES = 4 << 10
# Above what the bounds of each part allow together, so that each refusal names its own bound.
MAX_FORM_BYTES = 128 << 10
FLUSH_BYTES = 1 << 20


async def upload_asset(
    finetunes: Finetunes,
    account_id: str,
    ref: str,
    content_type: str | None,
    chunks: AsyncIterator[bytes],
) -> dict[str, Any]:
    """Receive one asset of the account's finetune `ref` (its id or name); raises
    WorkersAIError subclasses."""
    record = await asyncio.to_thread(finetunes.find, account_id, ref)
    incoming = await asyncio.to_thread(finetunes.expecting_assets, record)
    received = await receive_file(content_type, chunks, incoming, finetunes.max_file_bytes)
    try:
        return await asyncio.to_thread(
            finetunes.add_asset, record, received.file_name, received.path
        )
    finally:
        discard(received.path)


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    file_name: str
    path: Path
    size: int


async def receive_file(
    content_type: str | None, chunks: AsyncIterator[bytes], folder: Path, max_bytes: int
) -> ReceivedFile:
    """Stream a `multipart/form-data` body with fields `file_name` and `file` into a new file
    in `folder`, flushed to disk. The caller deletes the file once done with it.

    Raises BadInput for anything but one such body, RequestTooLarge past `max_bytes`.
    """
    boundary = _boundary(content_type)
    handle = await asyncio.to_thread(_create, folder)
    path = Path(handle.name)
    try:
        with handle:
            form = _Form(handle, max_bytes)
            await form.read(boundary, chunks)
        return ReceivedFile(form.file_name(), path, form.size)
    except BaseException:
        discard(path)
        raise


def _boundary(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadInput(
            "the body must be multipart/form-data with the fields 'file_name' and 'file'"
        )
    return boundary


@dataclass
class _Part:
    name: str | None = None
    disposition: bytes = b""
    header: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0  # of all its headers, counted as they arrive
    data: bytearray = field(default_factory=bytearray)


class _Form:
    """The parser's callbacks collect; `read` writes the file's bytes between two chunks, off
    the event loop."""

    def __init__(self, handle: IO[bytes], max_bytes: int) -> None:
        self._handle = handle
        self._max_bytes = max_bytes
        self._part = _Part()
        self._parts = 0
        self._fields: dict[str, str] = {}
        self._pending = bytearray()
        self._has_file = False
        self._ended = False
        self._ignored = 0
        self._received = 0
        self.size = 0

    async def read(self, boundary: bytes, chunks: AsyncIterator[bytes]) -> None:
        try:
            parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
            async for chunk in chunks:
                self._received += len(chunk)
                parser.write(chunk)
                if self.size > self._max_bytes:
                    raise RequestTooLarge(
                        f"an uploaded file may have at most {self._max_bytes} bytes"
                    )
                if self._received - self.size > MAX_FORM_BYTES:
                    raise BadInput(
                        f"the form may have at most {MAX_FORM_BYTES} bytes besides the file"
                    )
                if len(self._pending) >= FLUSH_BYTES:
                    await self._flush()
            parser.finalize()
        except FormParserError:
            raise BadInput("the multipart/form-data body is malformed") from None
        if not self._ended:
            raise BadInput("the multipart/form-data body ends early")
        if not self._has_file:
            raise BadInput(f"required field '{FILE_FIELD}' is missing")
        await self._flush()
        await asyncio.to_thread(_sync, self._handle)

    def file_name(self) -> str:
        if NAME_FIELD not in self._fields:
            raise BadInput(f"required field '{NAME_FIELD}' is missing")
        return self._fields[NAME_FIELD]

    async def _flush(self) -> None:
        data, self._pending = bytes(self._pending), bytearray()
        if data:
            await asyncio.to_thread(self._handle.write, data)

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadInput(f"the body has more than {MAX_PARTS} parts")
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._part.header += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._part.value += data[start:end]

    def _on_header_end(self) -> None:
        self._count_header_bytes(2)  # its CRLF: empty headers count too
        if self._part.header.strip().lower() == b"content-disposition":
            self._part.disposition = bytes(self._part.value)
        self._part.header.clear()
        self._part.value.clear()

    def _count_header_bytes(self, count: int) -> None:
        # Checked before the bytes are kept: a part's headers never hold more than the bound.
        self._part.header_bytes += count
        if self._part.header_bytes > MAX_PART_HEADER_BYTES:
            raise BadInput(f"a part's headers may have at most {MAX_PART_HEADER_BYTES} bytes")

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.disposition)
        name = options.get(b"name")
        if name is None:
            raise BadInput("every part must have a Content-Disposition with a name")
        self._part.name = name.decode("utf-8", errors="replace")
        if self._part.name == FILE_FIELD:
            if self._has_file:
                raise BadInput(f"the body has more than one '{FILE_FIELD}'")
            self._has_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part.name == FILE_FIELD:
            self.size += end - start
            if self.size <= self._max_bytes:
                self._pending += data[start:end]
        elif self._part.name == NAME_FIELD:
            self._part.data += data[start:end]
            if len(self._part.data) > MAX_FIELD_BYTES:
                raise BadInput(f"field '{NAME_FIELD}' is longer than {MAX_FIELD_BYTES} bytes")
        else:
            # Ignored, as unknown fields are elsewhere in the API, but not read without end.
            self._ignored += end - start
            if self._ignored > MAX_IGNORED_BYTES:
                raise BadInput(
                    f"fields other than '{NAME_FIELD}' and '{FILE_FIELD}' may have at most "
                    f"{MAX_IGNORED_BYTES} bytes in all (field {self._part.name!r})"
                )

    def _on_part_end(self) -> None:
        if self._part.name == NAME_FIELD:
            try:
                self._fields[NAME_FIELD] = self._part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(f"field '{NAME_FIELD}' is not UTF-8") from None

    def _on_end(self) -> None:
        self._ended = True


def discard(path: Path) -> None:
    """Delete a temporary file. Synchronous on purpose (one quick system call): it must run
    even in a task being cancelled."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _create(folder: Path) -> IO[bytes]:
    return tempfile.NamedTemporaryFile(
        mode="wb", prefix=UPLOAD_PREFIX, suffix=UPLOAD_SUFFIX, dir=folder, delete=False
    )


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
