"""Stage handlers for ``bench/bench_sharded_describe.py``: generate and cluster copy the descriptors and
vocabulary prepared once (``BENCH_PREPARED``, a folder), so that every run of the benchmark times the
real activate stage (``neuroscribe.service.describe.activate``) on the same inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neuroscribe.service.describe.activate import activate

STAGE_DIR = "stage"


def generate(ctx):
    (ctx.artefacts / STAGE_DIR).mkdir(parents=True, exist_ok=True)
    src = Path(os.environ["BENCH_PREPARED"])
    for name in ("descriptors.json", "vocabulary.json"):
        shutil.copyfile(src / name, ctx.artefacts / STAGE_DIR / name)
    return {"handoff": {"descriptors": f"{STAGE_DIR}/descriptors.json"}}


def cluster(ctx):
    return {"handoff": {"vocabulary": f"{STAGE_DIR}/vocabulary.json"}}


HANDLERS = {"generate": generate, "cluster": cluster, "activate": activate}
