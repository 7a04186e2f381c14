"""Everything in an upload's body but the file is bounded: part headers, unknown fields, and
what surrounds the parts. A body that breaks a bound is refused with 400 (5006) within a few
chunks of it, holding no more than the bound in memory."""

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.errors import BadInput
from server.finetunes.uploads import (
    MAX_FORM_BYTES,
    MAX_IGNORED_BYTES,
    MAX_PART_HEADER_BYTES,
    receive_file,
)
from tests.support.app import AUTH
from tests.support.envelopes import assert_error
from tests.support.finetunes_api import CONFIG, finetunes_url, leftovers, staged

BOUNDARY = "b0undary"
CHUNK = 64 << 10
DISPOSITION = 'Content-Disposition: form-data; name="{}"\r\n'
NAME_PART = f"--{BOUNDARY}\r\n{DISPOSITION.format('file_name')}\r\n{CONFIG}\r\n".encode()
FILE_PART = f"--{BOUNDARY}\r\n{DISPOSITION.format('file')}\r\n{{}}\r\n".encode()
WHOLE_FORM = NAME_PART + FILE_PART + f"--{BOUNDARY}--\r\n".encode()


def unknown_parts(count: int, size: int) -> bytes:
    part = f"--{BOUNDARY}\r\n{DISPOSITION.format('note')}\r\n".encode() + b"n" * size + b"\r\n"
    return part * count


# (the start of a body, then a filler repeated for as long as the server reads; fragment)
BOMBS = [
    pytest.param(
        f"--{BOUNDARY}\r\n{DISPOSITION.format('file')}".encode() + b"X-Filler: ",
        b"a",
        "",  # the multipart parser bounds one header line itself: "is malformed"
        id="one-endless-header",
    ),
    pytest.param(
        f"--{BOUNDARY}\r\n".encode(),
        b"X-Filler: " + b"a" * 3000 + b"\r\n",
        f"a part's headers may have at most {MAX_PART_HEADER_BYTES} bytes",
        id="headers-each-under-the-parsers-own-bound",
    ),
    pytest.param(
        f"--{BOUNDARY}\r\n{DISPOSITION.format('note')}\r\n".encode(),
        b"n",
        f"may have at most {MAX_IGNORED_BYTES} bytes in all (field 'note')",
        id="one-endless-unknown-field",
    ),
    pytest.param(
        unknown_parts(6, 1000),
        b"n",
        f"may have at most {MAX_IGNORED_BYTES} bytes in all",
        id="unknown-fields-adding-up",
    ),
    pytest.param(
        WHOLE_FORM,
        b"e",
        f"the form may have at most {MAX_FORM_BYTES} bytes besides the file",
        id="endless-epilogue",
    ),
    pytest.param(
        b"",
        b"\r\n",
        f"the form may have at most {MAX_FORM_BYTES} bytes besides the file",
        id="endless-preamble",
    ),
]


@pytest.mark.parametrize(("start", "filler", "fragment"), BOMBS)
def test_a_body_that_is_not_the_file_is_refused_early_without_being_held(
    tmp_path: Path, start: bytes, filler: bytes, fragment: str
) -> None:
    sent: list[int] = []
    chunk = filler * (CHUNK // len(filler))

    async def body() -> AsyncIterator[bytes]:
        yield start
        for _ in range(1024):  # 64 MiB, were it all read
            sent.append(len(chunk))
            yield chunk

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    tracemalloc.start()
    try:
        with pytest.raises(BadInput) as refused:
            asyncio.run(receive_file(content_type, body(), tmp_path, 1 << 30))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert refused.value.status == 400
    assert refused.value.code == 5006
    assert fragment in refused.value.message
    assert sum(sent) <= MAX_FORM_BYTES + 2 * CHUNK, "reading stops at the bound"
    assert peak < 1 << 20
    assert list(tmp_path.iterdir()) == []


def within_bounds() -> bytes:
    """A form with unknown fields and part headers just within their bounds."""
    # In two lines: the multipart parser bounds one header line to about 4 KiB itself.
    padding = (b"X-Padding: " + b"p" * (MAX_PART_HEADER_BYTES // 2 - 200) + b"\r\n") * 2
    file_part = f"--{BOUNDARY}\r\n{DISPOSITION.format('file')}".encode() + padding + b"\r\n{}\r\n"
    return (
        NAME_PART
        + unknown_parts(4, MAX_IGNORED_BYTES // 4)
        + file_part
        + f"--{BOUNDARY}--\r\n".encode()
    )


def test_a_form_within_the_bounds_is_read(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield within_bounds()

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    received = asyncio.run(receive_file(content_type, body(), tmp_path, 1 << 20))

    assert (received.file_name, received.path.read_bytes()) == (CONFIG, b"{}")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(
            f"--{BOUNDARY}\r\n".encode() + (b"X-A: " + b"a" * 3000 + b"\r\n") * 4 + b"\r\n",
            "a part's headers may have at most",
            id="part-headers",
        ),
        pytest.param(
            unknown_parts(1, MAX_IGNORED_BYTES + 1) + WHOLE_FORM,
            "fields other than 'file_name' and 'file' may have at most",
            id="unknown-field",
        ),
        pytest.param(WHOLE_FORM + b"e" * (MAX_FORM_BYTES + 1), "besides the file", id="epilogue"),
    ],
)
def test_a_bound_is_bad_input_over_http(
    client: TestClient, adapters_dir: Path, finetune: str, content: bytes, fragment: str
) -> None:
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    response = client.post(
        finetunes_url(f"/{finetune}/finetune-assets"), content=content, headers=headers
    )

    assert_error(response, 400, 5006, "AiError: Bad input: Error: ", fragment)
    assert staged(adapters_dir, finetune) == []
    assert leftovers(adapters_dir) == []
