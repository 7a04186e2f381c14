"""`freeze_startup_heap`: what exists when the server has started is out of the collector's
reach; what requests allocate afterwards is collected as before. Run in a process of its own:
freezing this one would keep every test's garbage."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import gc
from server.http.heap import freeze_startup_heap

class Node:
    def __init__(self):
        self.other = self

startup = [Node() for _ in range(5000)]
garbage_before = [Node() for _ in range(100)]
del garbage_before
freeze_startup_heap()
assert gc.get_freeze_count() >= len(startup), gc.get_freeze_count()
walked = {id(o) for o in gc.get_objects()}
assert not any(id(node) in walked for node in startup)

later = [Node() for _ in range(300)]  # a request's cycles, dropped when it ends
del later
print(gc.collect())
"""


def test_the_startup_heap_is_frozen_and_later_garbage_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 300  # the 300 later cycles (and their attribute dicts)
