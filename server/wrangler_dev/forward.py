"""Binding calls from the fake edge to the server's binding endpoint, streamed both ways.

The request goes on as workerd sent it (method, `MF-*` headers, body) to the root of
`--server`, the binding endpoint (server/binding/), with `Authorization: Bearer <--token>`
added when a token is given: the server's proxy form, which keeps the token out of URLs.
The answer comes back byte for byte, with its status and headers:
the binding reads a result only when content-type is exactly `application/json`, so nothing
here may re-encode or re-label it. Transport failures are translated here, once, into
ServerUnreachable, which the edge answers as an AiError the Worker can read.
"""

from collections.abc import AsyncIterator, Iterable

import httpx

# Hop-by-hop headers (RFC 9110 §7.6.1) and what each hop sets for itself. The preview token is
# this run's secret between wrangler and the edge; the server has no use for it.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding"}
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    b"upgrade",
    b"host",
    b"cf-workers-preview-token",
    b"authorization",  # only ours
}
_NOT_RETURNED = _HOP_BY_HOP
CONNECT_TIMEOUT_S = 10.0


class ServerUnreachable(Exception):
    """The server did not answer; the message says which URL and why."""


Headers = list[tuple[bytes, bytes]]  # raw, as ASGI and httpx carry them


def forwarded_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(name, value) for name, value in headers if name.lower() not in _NOT_FORWARDED]


def returned_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(name, value) for name, value in headers if name.lower() not in _NOT_RETURNED]


class Forwarder:
    """One HTTP client for the run; `open` sends a call and returns the streaming answer."""

    def __init__(self, server: str, token: str | None, client: httpx.AsyncClient) -> None:
        self.server = server.rstrip("/")
        self._authorization: Headers = []
        if token is not None:
            self._authorization = [(b"authorization", f"Bearer {token}".encode())]
        self._client = client

    @classmethod
    def create(cls, server: str, token: str | None) -> "Forwarder":
        # No read timeout: a generation takes as long as it takes; the Worker's own request
        # ends it by leaving (the edge then closes this answer, and the server aborts).
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        client = httpx.AsyncClient(timeout=timeout, trust_env=False)
        # Only what workerd sent: no Accept-Encoding (the server must not compress what the
        # binding reads), no User-Agent of ours.
        client.headers = httpx.Headers()
        return cls(server, token, client)

    def target(self, path: str, query: str) -> str:
        url = self.server + "/" + path.lstrip("/")
        return f"{url}?{query}" if query else url

    async def open(
        self,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: AsyncIterator[bytes] | None,
    ) -> httpx.Response:
        """`body` None: the call has none (`models()` is a GET), and none is sent."""
        request = self._client.build_request(
            method,
            self.target(path, query),
            headers=forwarded_headers(headers) + self._authorization,
            content=body,
        )
        try:
            return await self._client.send(request, stream=True)
        except httpx.TransportError as error:
            raise ServerUnreachable(
                f"cannot reach the workers-ai-local server at {self.server}: "
                f"{type(error).__name__}: {error}"
            ) from None

    @staticmethod
    async def body(response: httpx.Response) -> AsyncIterator[bytes]:
        """The answer's bytes as the server sent them (no decoding); a connection that breaks
        mid-answer ends the body early, as it would have reached the Worker directly.
        The caller closes `response`."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.TransportError:
            return

    async def aclose(self) -> None:
        await self._client.aclose()
