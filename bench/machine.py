"""The benchmark machine's processes: the CPU time they use, and the engines kept behind the
HTTP processes on the cores they share (`bench.remote --engines-behind`), on a budget of their
own if asked (`--engine-cores`)."""

import contextlib
from pathlib import Path

import psutil


def cpu_s(process: psutil.Process) -> float:
    """User and system time of a server and its children (`--workers`)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


ENGINES_CGROUP = "workers-ai-local-bench-engines"


# The period of the engines' budget (`cores` below): short, so that they are held back a few
# ms at a time rather than for most of the default 100 ms.
BUDGET_PERIOD_US = 10_000


def engines_behind(replica_pids: list[int], cores: float | None = None) -> str:
    """Move the replicas' engine processes (`VLLM::EngineCore`, `VLLM::Worker`) into a CPU
    cgroup of the least weight (`remove_engines_cgroup` once they are gone); what was done.

    On a GPU box the engines compute on the GPUs and leave the host's cores to the HTTP
    processes: the replicas' API servers, the router, this server and the clients. Here they
    compute on the same two cores, and every HTTP process of either path can wait hundreds of
    ms for a core (Linux shares the CPU between sessions first, and each server is a session:
    nice values do not reach across). In a cgroup of weight 1 (cgroup v2) or 2 shares (v1), the
    engines still take every cycle the HTTP processes leave idle, and those run first, as
    beside GPUs. Needs root.

    `cores` also caps the group at that much CPU time, below what the engines could use (each
    engine computes on one thread: one core each). Their pace is then their budget's, whichever
    path feeds them and whatever the HTTP processes take, as a GPU's is its own: a path's CPU no
    longer comes out of generation, and what is left between the paths is the time each adds.
    Without a cap, an HTTP process that wakes on an engine's core holds that engine up for as
    long as it runs."""
    engines = [
        child
        for pid in replica_pids
        for child in psutil.Process(pid).children(recursive=True)
        if child.name().startswith("VLLM::")
    ]
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    quota_us = None if cores is None else round(cores * BUDGET_PERIOD_US)
    try:
        if (v1 / "cpu.shares").exists():
            group = v1 / ENGINES_CGROUP
            group.mkdir(exist_ok=True)
            (group / "cpu.shares").write_text("2")
            (group / "cpu.cfs_period_us").write_text(str(BUDGET_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(-1 if quota_us is None else quota_us))
            for thread in (thread for engine in engines for thread in engine.threads()):
                with contextlib.suppress(ProcessLookupError):
                    (group / "tasks").write_text(str(thread.id))
        elif (v2 / "cgroup.controllers").exists():
            group = v2 / ENGINES_CGROUP
            (v2 / "cgroup.subtree_control").write_text("+cpu")
            group.mkdir(exist_ok=True)
            (group / "cpu.weight").write_text("1")
            quota_text = "max" if quota_us is None else str(quota_us)
            (group / "cpu.max").write_text(f"{quota_text} {BUDGET_PERIOD_US}")
            for engine in engines:
                with contextlib.suppress(ProcessLookupError):
                    (group / "cgroup.procs").write_text(str(engine.pid))
        else:
            raise SystemExit("--engines-behind: no cgroup cpu controller found")
    except PermissionError:
        raise SystemExit("--engines-behind needs root (it writes to /sys/fs/cgroup)") from None
    budget = "" if cores is None else f", at most {cores:g} cores' worth of CPU time"
    return f"{len(engines)} engine processes in the cgroup {group}{budget}"


def remove_engines_cgroup() -> None:
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        with contextlib.suppress(OSError):
            (root / ENGINES_CGROUP).rmdir()
