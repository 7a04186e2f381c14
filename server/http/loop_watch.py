"""A watch on the event loop: a warning, with where the loop was, when something blocks it.

Every request of a process is served by its one event loop, so one blocking call delays them
all. A beat on the loop marks the time every `BEAT_S`; a thread outside the loop reads it. When
the loop has missed its beat for `STALL_S`, the thread logs what the process did meanwhile (CPU,
major faults, the machine's steal time) and where each of its threads is, the loop's first; once
the loop runs again, how long it was blocked. Two wake-ups a second, whatever the load.
"""

import asyncio
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

BEAT_S = 0.5
STALL_S = 2.0


class LoopWatch:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, stall_s: float = STALL_S, beat_s: float = BEAT_S
    ) -> None:
        self._loop = loop
        self._stall_s = stall_s
        self._beat_s = beat_s
        self._loop_thread = threading.get_ident()
        self._beat_at = time.monotonic()
        self._beat: asyncio.TimerHandle | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)

    def start(self) -> None:
        self._on_beat()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._beat is not None:
            self._beat.cancel()
        self._thread.join()

    def _on_beat(self) -> None:
        self._beat_at = time.monotonic()
        self._beat = self._loop.call_later(self._beat_s, self._on_beat)

    def _watch(self) -> None:
        blocked_since: float | None = None
        running = Reading.now()  # the last reading while the loop still kept its beat
        while not self._stopped.wait(self._beat_s):
            beat_at = self._beat_at
            now = Reading.now()
            late = now.at - beat_at
            if late < self._stall_s:
                running = now
            if blocked_since is None and late >= self._stall_s:
                blocked_since = beat_at
                logger.warning(
                    "the event loop has not run for %.1f s; every request waits. %s Its threads "
                    "are at:\n%s",
                    late,
                    now.since(running),
                    self._where(),
                )
            elif blocked_since is not None and beat_at > blocked_since:
                logger.warning(
                    "the event loop runs again: it was blocked for %.1f s", beat_at - blocked_since
                )
                blocked_since = None

    def _where(self) -> str:
        """The stack of every thread but this one, the loop's first."""
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        frames = sys._current_frames()
        idents = sorted(frames, key=lambda ident: ident != self._loop_thread)
        return "".join(
            f"thread {names.get(ident, ident)}"
            f"{' (the event loop)' if ident == self._loop_thread else ''}:\n"
            + "".join(traceback.format_stack(frames[ident]))
            for ident in idents
            if ident != threading.get_ident()
        )


@dataclass(frozen=True)
class Reading:
    """What this process and the machine had done by a moment."""

    at: float
    cpu_s: float  # this process's CPU time
    major_faults: int  # its pages read back from disk
    stolen_s: float | None  # the time the hypervisor ran others on this machine's CPUs

    @classmethod
    def now(cls) -> "Reading":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.monotonic(), usage.ru_utime + usage.ru_stime, usage.ru_majflt, _stolen_s())

    def since(self, before: "Reading") -> str:
        """Why a process may stop: it computed, it read pages back, or the hypervisor ran
        something else on the machine's CPUs."""
        told = (
            f"In the last {self.at - before.at:.1f} s this process used "
            f"{self.cpu_s - before.cpu_s:.1f} s of CPU and waited for "
            f"{self.major_faults - before.major_faults} pages to be read back from disk"
        )
        if self.stolen_s is not None and before.stolen_s is not None:
            told += (
                f"; the hypervisor took {self.stolen_s - before.stolen_s:.1f} s from this "
                "machine's CPUs (steal time)"
            )
        return told + "."


def _stolen_s() -> float | None:
    """The machine's steal time (Linux: the 8th figure of /proc/stat's `cpu` line)."""
    try:
        with open("/proc/stat", "rb") as stat:
            figures = stat.readline().split()
        return int(figures[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def loop_watched(stall_s: float = STALL_S, beat_s: float = BEAT_S) -> Iterator[LoopWatch]:
    """Watch the running loop (call from a coroutine) for as long as the block lasts."""
    watch = LoopWatch(asyncio.get_running_loop(), stall_s, beat_s)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
