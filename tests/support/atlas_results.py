"""Three real result folders of one tiny model for the atlas's tests: a describe job (fake LLM), an
experts job and a rank job, all on a GPT-NeoX whose layer-0 unit 5 fires on the token "cat".

The planted unit is therefore described "cat", an expert of the concept "cat" and first in the
rank job's informed rankings: the same neuron in three jobs, which the atlas must join. One
dataset sentence is ``<script>alert(1)</script> ...`` (it must render as text).
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np

from tiny_models import make_planted_neox

PLANTED = (0, 5)
SCRIPT = "<script>alert(1)</script> my cat is good ."
NOUNS = ["phone", "battery", "screen", "headset", "guitar", "bus"]


def describe_sentences() -> list[tuple[str, str]]:
    out = [(f"{['the', 'a', 'this', 'that', 'my'][i % 5]} cat is {['very', 'really', 'so', 'too'][i // 5]} good .",
            "1") for i in range(19)]
    out.append((SCRIPT, "1"))
    for i in range(60):
        noun = NOUNS[i % len(NOUNS)]
        good = i % 2 == 0
        adv = ["", "really ", "very ", "so ", "too ", "really really ", "very very ", "so so ", "too too ",
               "really very "][i // 6]
        out.append((f"my {noun} {'works' if good else 'broke'} {adv}{'great' if good else 'bad'} .",
                    "1" if good else "0"))
    return out


def fake_descriptors(req):
    """Descriptors of a sentence: its nouns and its opinion (explanations and detection: the fake's own)."""
    from neuroscribe.workers.generate.fake import default_reply

    if req.meta.get("kind") in ("explanation", "detection"):
        return default_reply(req)
    s = req.meta["sentence"]
    words = [w for w in s.split() if w in NOUNS + ["cat"]]
    words.append("positive" if ("good" in s or "great" in s) else "negative")
    return "\n".join(f"{i}. {w}" for i, w in enumerate(words, 1))


def far_apart_embed(words):
    """Every descriptor far from every other: nothing clusters, each stays itself."""
    out = []
    for w in words:
        v = np.random.default_rng(sum(map(ord, w))).normal(0, 1, 64)
        out.append(10 * v / np.linalg.norm(v))
    return np.array(out)


def run_describe(model: Path, out: Path) -> Path:
    from neuroscribe.jobs import DescribeJob, GeneratorSpec, Pooling, SubjectModelSpec
    from neuroscribe.jobs.describe import DatasetSpec, VocabularySpec
    from neuroscribe.service.describe.embedded import run_describe_job
    from neuroscribe.workers.generate import FakeBackend

    rows = describe_sentences()
    data = DatasetSpec(name="toy.tsv", texts=tuple(t for t, _ in rows), labels=tuple(lab for _, lab in rows),
                       label_names={"1": "positive", "0": "negative"})
    job = DescribeJob(dataset=data, model=SubjectModelSpec(name=str(model), pooling=Pooling.max, device="cpu"),
                      generator=GeneratorSpec(backend="fake"), top_k_percent=25.0,
                      vocabulary=VocabularySpec(min_cluster_size=3))
    run_describe_job(job, out, progress=False, backend=FakeBackend(fake_descriptors), embed=far_apart_embed, log=lambda m: None)
    return out


def _cli(args: list[str]) -> None:
    from click.testing import CliRunner

    from neuroscribe.service.cli import cli

    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output


def run_experts(model: Path, root: Path) -> Path:
    subj, tail = ["my", "the", "your", "this", "that"], ["is very good", "was so bad", "works with a phone",
                                                         "broke after a day", "is great", "was poor"]
    rows = []
    for concept, other in (("cat", "dog"), ("bus", "guitar")):
        rows += [{"text": f"{a} {concept} {b}", "concept": concept, "label": 1} for a, b in itertools.product(subj, tail)]
        rows += [{"text": f"{a} {other} {b}", "concept": concept, "label": 0} for a, b in itertools.product(subj, tail)]
    sentences = root / "experts-sentences.jsonl"
    sentences.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / "experts"
    _cli(["experts", "--model", str(model), "--sentences", str(sentences), "--tau", "0.9", "--quiet",
          "--device", "cpu", "--out", str(out)])
    return out


def run_rank(model: Path, root: Path) -> Path:
    other = ["the bus is good .", "my phone works .", "the dog was bad .", "a guitar is great .", "the screen broke ."]
    rows = [(f"the cat is {'very ' * (i % 3)}good .", "1") for i in range(12)]
    rows += [(other[i % len(other)].replace(".", "really " * (i % 2) + "."), "0") for i in range(12)]
    data = root / "cats.tsv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(("text", "label"))
        w.writerows(rows)
    out = root / "rank"
    _cli(["rank", "--model", str(model), "--dataset", str(data), "--layer", "0", "--pooling", "max", "--k", "1",
          "--k", "5", "--seeds", "2", "--n-random", "2", "--continuation", "1= cat", "--continuation", "0= bus",
          "--device", "cpu", "--out", str(out), "--quiet"])
    return out


def make_results(root: Path) -> dict[str, Path]:
    """{'model', 'describe', 'experts', 'rank'} under ``root``."""
    model = make_planted_neox(root / "planted", word="cat", unit=PLANTED[1])
    return {"model": model, "describe": run_describe(model, root / "describe"),
            "experts": run_experts(model, root), "rank": run_rank(model, root)}
