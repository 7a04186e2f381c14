"""engine.vllm.amx: importing it (as vLLM does in each worker) asks Linux for AMX tiles."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


def has_amx() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "amx_tile" in cpuinfo.read_text().split()


# The process's permission for AMX tile data (XFEATURE_XTILEDATA, bit 18), before and after the
# import: arch_prctl(ARCH_GET_XCOMP_PERM) on x86-64 Linux.
PERMISSION = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def tiles():
    mask = ctypes.c_uint64()
    assert libc.syscall(158, 0x1022, ctypes.byref(mask)) == 0, ctypes.get_errno()
    return bool(mask.value & (1 << 18))
before = tiles()
import engine.vllm.amx
print(before, tiles())
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64" or not has_amx(),
    reason="needs a CPU with AMX, on x86-64 Linux",
)
def test_importing_the_worker_extension_asks_for_amx() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PERMISSION], cwd=REPO, capture_output=True, text=True, check=True
    )

    assert done.stdout.split() == ["False", "True"]
