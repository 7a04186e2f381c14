"""Pinned npm packages for the tests that drive real Workers tooling, installed once, cached.

    project = installed(WORKERS_TOOLING)    # <cache>/npm/<hash of the pins>/, with node_modules/
    project / "node_modules" / ".bin" / "vitest"

The folder is named after a hash of the exact pins (and the platform: workerd's binary is chosen
at install time), so a new pin installs afresh and an unchanged one is reused across runs. It is
installed with `npm install --no-audit --no-fund` into a temporary sibling and renamed into place
once complete, under a file lock: concurrent test runs wait for one install, and an interrupted
one leaves nothing that looks installed. Nothing is skipped: without Node.js or npm, or with a
Node.js too old for these packages, `installed` raises NpmUnavailable saying what to install.
"""

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from server.settings import DEFAULT_CACHE_DIR

# What Miniflare's AI binding was traced with (../shared/reference/wrangler-dev.md), and the
# vitest-pool-workers release that depends on exactly these two (0.15.1), with a vitest its
# `^4.1.0` peer range accepts.
MINIFLARE = "4.20260426.0"
WRANGLER = "4.86.0"
VITEST_POOL_WORKERS = "0.15.1"
VITEST = "4.1.5"
WORKERS_TOOLING = {
    "miniflare": MINIFLARE,
    "wrangler": WRANGLER,
    "@cloudflare/vitest-pool-workers": VITEST_POOL_WORKERS,
    "vitest": VITEST,
}
# wrangler 4.86's `engines` (the strictest of the four).
MIN_NODE = (20, 3)
INSTALL_TIMEOUT_S = 900
CACHE_ENV = "WORKERS_AI_LOCAL_NPM_CACHE"


class NpmUnavailable(RuntimeError):
    """Node.js or npm is missing or too old, or the install failed; the message says which."""


def cache_root() -> Path:
    """`$WORKERS_AI_LOCAL_NPM_CACHE`, else `~/.cache/workers-ai-local/npm`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else DEFAULT_CACHE_DIR.expanduser() / "npm"


def installed(packages: Mapping[str, str] = WORKERS_TOOLING) -> Path:
    """The project folder holding `packages` (name -> exact version) in its node_modules."""
    check_node()
    project = cache_root() / _key(packages)
    if _complete(project, packages):
        return project
    project.parent.mkdir(parents=True, exist_ok=True)
    with (project.parent / f"{project.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing the same pins
        if not _complete(project, packages):
            _install(project, packages)
    return project


def check_node() -> None:
    """Raise NpmUnavailable unless `node` (new enough) and `npm` are on the PATH."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        raise NpmUnavailable(
            f"{missing} not found on the PATH: the Workers binding tests run real Miniflare and "
            f"vitest, which need Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} and npm "
            "(https://nodejs.org/, or your system's `nodejs` and `npm` packages)"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if (major, minor) < MIN_NODE:
        raise NpmUnavailable(
            f"Node.js {version} is too old for wrangler {WRANGLER} and Miniflare {MINIFLARE}: "
            f"install Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]}"
        )


def _key(packages: Mapping[str, str]) -> str:
    pins = sorted(packages.items())
    text = json.dumps([pins, sys.platform, platform.machine()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _manifest(packages: Mapping[str, str]) -> dict[str, object]:
    return {"name": "workers-ai-local-tests", "private": True, "dependencies": dict(packages)}


def _complete(project: Path, packages: Mapping[str, str]) -> bool:
    """Installed in full: the rename happens only after a successful install."""
    manifest = project / "package.json"
    return manifest.is_file() and json.loads(manifest.read_text()) == _manifest(packages)


def _install(project: Path, packages: Mapping[str, str]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f"{project.name}-", dir=project.parent))
    try:
        (staging / "package.json").write_text(json.dumps(_manifest(packages), indent=2))
        command = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            done = subprocess.run(
                command,
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NpmUnavailable(
                f"`npm install` of {_listed(packages)} took over {INSTALL_TIMEOUT_S} s"
            ) from None
        if done.returncode != 0:
            raise NpmUnavailable(
                f"`npm install` of {_listed(packages)} failed (exit {done.returncode}):\n"
                f"{done.stderr[-3000:]}"
            )
        shutil.rmtree(project, ignore_errors=True)  # a leftover of an older layout
        staging.rename(project)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _listed(packages: Mapping[str, str]) -> str:
    return ", ".join(f"{name}@{version}" for name, version in sorted(packages.items()))
