"""Whether the upstream answers `GET /health` with 200, asked at most once per interval.

The engine's `status()` asks it, for `/health` and `/metrics` (and, with several workers, each
worker's gauges once a second); a request never does: its admission reads the engine's `load()`.
The answer is cached, and a caller does not wait for the network: an answer older than the
interval is still given while one probe, in the background, refreshes it (a router's /readiness
under load can take 100 ms and more). Only an answer older than `max_stale_s` (an idle server's)
is waited for; callers that find it so share one probe, and a probe that hangs ends after a
short timeout, asked twice (one late answer may be this process's own stall). vLLM's /health
is 200 while its engine runs (503 once it died); a router's is its own view of its workers.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from engine.remote.upstream import TRANSPORT_ERRORS, UpstreamClient

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0
MAX_STALE_S = 10.0


class HealthProbe:
    """The upstream's last /health answer. Starts healthy: the engine starts only once the
    upstream has answered."""

    def __init__(
        self,
        client: UpstreamClient,
        path: str = "/health",
        interval_s: float = PROBE_INTERVAL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
        max_stale_s: float = MAX_STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._path = path
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._max_stale_s = max_stale_s
        self._clock = clock
        self._healthy = True
        self._detail = ""
        self._checked_at = clock()
        self._probe: asyncio.Task[None] | None = None

    async def check(self) -> tuple[bool, str]:
        """(healthy, why not): the last answer, refreshed in the background once `interval_s`
        old, waited for once `max_stale_s` old. Never raises but CancelledError."""
        age = self._clock() - self._checked_at
        if age >= self._interval_s and self._probe is None:
            self._probe = asyncio.create_task(self._run())
        if age >= self._max_stale_s and self._probe is not None:
            # Shielded: a caller that is cancelled does not cancel the probe others await.
            await asyncio.shield(self._probe)
        return self._healthy, self._detail

    async def settled(self) -> None:
        """Wait for the probe in flight, if any."""
        if self._probe is not None:
            await asyncio.shield(self._probe)

    async def _run(self) -> None:
        try:
            try:
                status = await self._status()
            except TimeoutError:
                # One late answer is not yet a sick upstream: when this process itself stood
                # still (a blocked loop, a stalled machine), the timer fires as it runs again,
                # before the answer is read. A second late answer is believed.
                status = await self._status()
        except TRANSPORT_ERRORS as error:
            healthy, detail = False, f"upstream unreachable: {error!r}"
        except Exception as error:  # status() must answer; a bug here is logged, not raised
            logger.exception("probing the upstream's %s failed", self._path)
            healthy, detail = False, f"probing {self._path} failed: {error!r}"
        else:
            healthy = status == 200
            detail = "" if healthy else f"upstream {self._path} answered {status}"
        finally:
            self._probe = None
        self._healthy, self._detail = healthy, detail
        self._checked_at = self._clock()

    async def _status(self) -> int:
        status, _ = await self._client.get(self._path, self._timeout_s)
        return status

    def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
