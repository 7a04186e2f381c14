"""The multipart body of a finetune upload: read as it streams (the file may come before its
name), refused at the size limit without being held, and malformed forms are bad input."""

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.errors import RequestTooLarge
from server.finetunes.uploads import receive_file
from tests.support.app import AUTH, ClientFactory, lora_models
from tests.support.envelopes import assert_error
from tests.support.finetunes_api import (
    CONFIG,
    WEIGHTS,
    created_id,
    finetunes_url,
    leftovers,
    staged,
    upload,
)


def test_the_file_may_come_before_its_name(
    client: TestClient, files: dict[str, bytes], finetune: str
) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        .encode() + files[CONFIG]
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file_name"\r\n\r\n'
        f"{CONFIG}\r\n--{boundary}--\r\n".encode()
    )  # fmt: skip
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}

    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets"), content=body, headers=headers
    )

    assert response.status_code == 200, response.text


def test_an_upload_over_the_limit_is_refused_while_it_streams(
    make_client: ClientFactory, adapters_dir: Path, files: dict[str, bytes]
) -> None:
    client = make_client(
        models=lora_models(), adapters_dir=adapters_dir, max_finetune_file_bytes=len(files[CONFIG])
    )
    finetune = created_id(client, "pirate")

    response = upload(client, finetune, WEIGHTS, files[WEIGHTS])

    assert_error(response, 413, 3006, f"at most {len(files[CONFIG])} bytes")
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []
    assert upload(client, finetune, CONFIG, files[CONFIG]).status_code == 200


def bytes_in(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir())


def test_an_oversized_upload_is_refused_without_being_held(tmp_path: Path) -> None:
    limit, chunk, chunks = 1 << 20, 1 << 16, 512
    sizes: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        for _ in range(chunks):
            sizes.append(bytes_in(tmp_path))
            yield b"x" * chunk
        yield b"\r\n--b--\r\n"

    tracemalloc.start()
    try:
        with pytest.raises(RequestTooLarge):
            asyncio.run(receive_file("multipart/form-data; boundary=b", body(), tmp_path, limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(sizes) <= 2 + limit // chunk, "reading stops at the limit"
    assert max(sizes) <= limit
    assert peak < 4 * limit
    assert list(tmp_path.iterdir()) == []


MALFORMED = [
    pytest.param({"json": {"file_name": CONFIG}}, "must be multipart/form-data", id="json"),
    pytest.param(
        {"data": {"file_name": CONFIG}, "files": {"other": ("x", b"{}")}},
        "required field 'file'",
        id="no-file",
    ),
    pytest.param(
        {"files": {"file": ("x", b"{}")}}, "required field 'file_name'", id="no-file-name"
    ),
    pytest.param(
        {"data": {"file_name": CONFIG}, "files": [("file", ("a", b"{}")), ("file", ("b", b"{}"))]},
        "more than one 'file'",
        id="two-files",
    ),
    pytest.param(
        {
            "content": b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n{}',
            "headers": {"Content-Type": "multipart/form-data; boundary=b"},
        },
        "ends early",
        id="truncated",
    ),
    pytest.param(
        {
            "content": b"--",
            "headers": {"Content-Type": f"multipart/form-data; boundary={'b' * 300}"},
        },
        "is malformed",
        id="long-boundary",
    ),
    pytest.param(
        {"data": {"file_name": "x" * 2000}, "files": {"file": ("x", b"{}")}},
        "longer than",
        id="long-file-name",
    ),
]


@pytest.mark.parametrize(("request_options", "fragment"), MALFORMED)
def test_a_malformed_upload_is_bad_input(
    client: TestClient,
    adapters_dir: Path,
    finetune: str,
    request_options: dict[str, Any],
    fragment: str,
) -> None:
    options = dict(request_options)
    headers = {**AUTH, **options.pop("headers", {})}

    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets"), headers=headers, **options
    )

    assert_error(response, 400, 5006, fragment)
    assert leftovers(adapters_dir) == []
