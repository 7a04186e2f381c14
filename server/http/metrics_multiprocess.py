"""prometheus-client's multiprocess mode: one `/metrics` for all the processes of `--workers N`.

Under `serve --workers N` the kernel hands each connection, a scrape's too, to any one of the
workers, and each keeps its own metric values. In multiprocess mode prometheus-client keeps every
value in a file of one shared directory instead (one file per process and kind of metric), and a
`MultiProcessCollector` merges the files when scraped: counters and histograms are summed, each
gauge by its `multiprocess_mode`. So whichever worker answers, a scrape sees the whole set.

prometheus-client chooses the mode once, when it is imported, by `PROMETHEUS_MULTIPROC_DIR`: the
parent (`server.workers`) puts it in the environment the workers start with, before they import
anything. The parent owns the directory (`SharedMetricsDir`): a fresh private one for each set
(files left by an earlier run would be counted), the live gauges of a worker that exited taken
out of the sums (`mark_process_dead`), the whole removed when the set stops.

What the mode costs (prometheus-client's documented limits), and what this server does about it:

- A scrape must merge the files into a registry holding nothing else: metrics registered there
  as well would be exported twice. `shared_registry` builds it; the app's own registry is not
  exposed then.
- Custom collectors are not merged: each reports what the process answering the scrape sees.
  Only those whose value is the same in every process may be added to the shared registry.
- No `process_*` or `python_*` metrics: they describe one process, which a scrape picks at random.
- Gauges cannot use `set_function`, a `pid` label, `remove` or `clear`; Info and Enum do not work.
"""

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """True when prometheus-client, in this process, keeps the metric values in the shared
    directory (it decided when imported)."""
    return values.ValueClass is not values.MutexValue


def shared_registry() -> CollectorRegistry:
    """A registry of every process's metrics, merged from the shared directory."""
    registry = CollectorRegistry()
    # Reads the directory named by PROMETHEUS_MULTIPROC_DIR; prometheus-client leaves it untyped.
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class SharedMetricsDir:
    """The directory the workers' metrics share, for as long as the set runs.

    `mkdtemp` makes it new, empty and readable by this user only."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="workers-ai-local-metrics-"))

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with this directory as the workers' PROMETHEUS_MULTIPROC_DIR (the old
        lower-case name, which prometheus-client still reads, left out)."""
        environment = {name: value for name, value in base.items() if name != ENV.lower()}
        environment[ENV] = str(self.path)
        return environment

    def process_exited(self, pid: int) -> None:
        """Take the live gauges of the worker `pid` out of the sums; its counts stay."""
        mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "SharedMetricsDir":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()
