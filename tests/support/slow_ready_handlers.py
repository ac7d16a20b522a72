"""Stage handlers for the ready-handshake tests: ``service_handlers``' stages, but an executor process
that imports this module takes as long to become ready as the test wants.

Only in an executor process (a spawned child; a worker process importing it is not held up), with
``NEUROSCRIBE_TEST_READY_DIR`` set, the import writes ``<dir>/loading.<pid>``, then waits until the
test creates ``<dir>/go.<pid>`` (at most 120 s), then writes ``<dir>/ready.<pid>``. With
``NEUROSCRIBE_TEST_READY_FAIL`` set it raises instead: handlers that cannot be loaded.
"""

import multiprocessing
import os
import time
from pathlib import Path

from service_handlers import HANDLERS

__all__ = ["HANDLERS"]


def _hold_up() -> None:
    if multiprocessing.parent_process() is None:  # not an executor
        return
    if os.environ.get("NEUROSCRIBE_TEST_READY_FAIL"):
        raise RuntimeError("these handlers are broken on purpose")
    folder = os.environ.get("NEUROSCRIBE_TEST_READY_DIR")
    if not folder:
        return
    folder = Path(folder)
    pid = os.getpid()
    (folder / f"loading.{pid}").touch()
    deadline = time.monotonic() + 120
    while not (folder / f"go.{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    (folder / f"ready.{pid}").touch()


_hold_up()
