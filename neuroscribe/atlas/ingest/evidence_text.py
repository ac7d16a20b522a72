"""The token evidence's JSON text columns, chunk by chunk: each unit's exemplar rows, kinds,
responses and token counts, and its histogram's edges and counts.

Most of an import's own work at 460k units is here (25M floats, each ``repr``'d as ``json.dumps``
does), and it needs nothing but the arrays: from ``HELPER_MIN`` units on, a helper process makes
the text of the next chunks while the importer builds and writes the current one. The helper is
a plain ``python -c`` child fed pickled arrays on its stdin (not ``multiprocessing``: its spawn
and forkserver children run the caller's ``__main__`` again, and a fork would copy the
importer's threads and connections). The text is the same either way; if the helper cannot start
or dies, the chunks it did not return are made here.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np

from neuroscribe.atlas.ingest.json_columns import rows_text

__all__ = ["evidence_texts", "texts_in_order", "HELPER_MIN", "AHEAD"]

HELPER_MIN = 65_536
AHEAD = 2
_ARRAYS = ("rows", "kind", "activation", "length", "hist_edges", "hist_counts")


def evidence_texts(rows: np.ndarray, kinds: np.ndarray, act: np.ndarray, length: np.ndarray, edges: np.ndarray,
                   counts: np.ndarray) -> dict[str, list[str]]:
    """Per unit (row of the (n, E) and (n, B) arrays): the JSON text of its kept entries (rows >= 0)
    of rows, kinds, responses (non-finite: null) and token counts; of its edges (non-finite: null)
    and counts."""
    keep = rows >= 0
    mask = None if keep.all() else keep
    n = len(rows)
    same_kinds = mask is None and n > 0 and bool((kinds == kinds[0]).all())  # as the describe job writes them
    return {"rows": rows_text(rows, mask),
            "kinds": [json.dumps(kinds[0].tolist())] * n if same_kinds else rows_text(kinds, mask),
            "activations": rows_text(act, mask, floats=True), "lengths": rows_text(length, mask),
            "edges": rows_text(edges, floats=True), "counts": rows_text(counts)}


def _serve() -> None:
    """The helper: pickled argument tuples in on stdin, pickled ``evidence_texts`` out, until None."""
    src, out = sys.stdin.buffer, sys.stdout.buffer
    while (args := pickle.load(src)) is not None:
        pickle.dump(evidence_texts(*args), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


class _Helper:
    """The helper process, fed by a thread (so that writing the next chunks never waits on the
    results not yet read)."""

    def __init__(self):
        import neuroscribe

        env = dict(os.environ)
        root = str(Path(neuroscribe.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from neuroscribe.atlas.ingest.evidence_text import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self._todo: deque = deque()
        self._ready = threading.Condition()
        self._feeder = threading.Thread(target=self._feed, name="atlas-evidence-text", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        try:
            while True:
                with self._ready:
                    while not self._todo:
                        self._ready.wait()
                    args = self._todo.popleft()
                pickle.dump(args, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
                if args is None:
                    return
        except (OSError, ValueError):  # the helper is gone: the reader sees it too
            return

    def submit(self, args) -> None:
        with self._ready:
            self._todo.append(args)
            self._ready.notify()

    def result(self) -> dict:
        return pickle.load(self.proc.stdout)

    def close(self, finished: bool) -> None:
        """Stop the helper: it is told to (``finished``: every result was read) or killed."""
        if not finished:
            self.proc.kill()
        self.submit(None)
        self._feeder.join(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def texts_in_order(ev: dict, chunks: list[np.ndarray]) -> Iterator[dict[str, list[str]]]:
    """``evidence_texts`` of each chunk of evidence rows, in order: chunk 0 here while the helper
    starts, the next ones by the helper, ``AHEAD`` chunks ahead (when the chunks hold
    ``HELPER_MIN`` units or more; all here otherwise)."""
    def args(er):
        return tuple(ev[k][er] for k in _ARRAYS)

    helper = None
    if sum(len(c) for c in chunks) >= HELPER_MIN and len(chunks) > 1:
        try:
            helper = _Helper()
        except OSError:
            helper = None
    if helper is None:
        for er in chunks:
            yield evidence_texts(*args(er))
        return
    sent, done, failed = 1, 0, False  # the next chunk to hand to the helper; results read
    try:
        for i, er in enumerate(chunks):
            while not failed and sent < len(chunks) and sent <= i + AHEAD:
                helper.submit(args(chunks[sent]))
                sent += 1
            got = None
            if i > 0 and not failed:
                try:
                    got = helper.result()
                    done += 1
                except Exception:  # the helper died (memory?): the rest is made here, the same
                    failed = True
            yield got if got is not None else evidence_texts(*args(er))
    finally:
        helper.close(finished=not failed and done == sent - 1)
