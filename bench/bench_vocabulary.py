"""Benchmark: the descriptor vocabulary's HDBSCAN on 20,000 descriptors, with and without PCA reduction.

Data (seeded): ``--n`` (default 20,000) distinct short descriptor phrases of 1-3 words, built from
the 751 words of the packaged MEN word pairs (``load_word_pairs()``): single words, modifier + noun
("rusty car"), noun + noun ("beach house"), modifier + noun + noun ("old beach house") and noun +
facet ("sunset imagery", "coffee quality"). The modifiers are the MEN words listed in ``MODIFIERS``
(MEN ships no parts of speech); every other MEN word, bar a few verbs, serves as a noun. Each
descriptor is one sentence's only descriptor (frequency 1: the frequencies only decide cluster names).

Embeddings: computed once, before either arm, and timed apart (both arms share them):
  minilm  (default) the packaged MiniLM, ``minilm_embedder()`` (384-dim unit vectors, local files);
  random  seeded planted gaussian blobs in 384 dims (about 50 descriptors a blob, 10% of the points
          uniform on the sphere as background), normalised: a quick run without the model.

The two arms, in the same process, interleaved for ``--repeats`` rounds (best time of each printed):
  full     ``build_vocabulary(..., reduce_to=None)``: HDBSCAN on the 384-dim embeddings;
  reduced  ``build_vocabulary(..., reduce_to=32)``: PCA (``random_state=seed``) first, then HDBSCAN.
Both call the product's code path with an embedder that returns the stored rows of the given words,
so what is timed is ``build_vocabulary`` itself (float64 copy, PCA, HDBSCAN, naming); the PCA alone
is also timed once, for reference. HDBSCAN parameters: ``--min-cluster-size`` (5) and
``--min-samples`` (None), as ``build_vocabulary``'s defaults.

Agreement: the adjusted Rand index (``sklearn.metrics.adjusted_rand_score``) between the two
clusterings, three ways, since HDBSCAN's noise (label -1) is no cluster:
  vocabulary    the label of a descriptor is its vocabulary name, so each noise point is a singleton
                (what the product does with noise: the descriptor stays itself) -- the headline ARI;
  noise=1 label all noise points of an arm share one label;
  both          only the descriptors clustered (not noise) in both arms.

Run: ``.venv/bin/python bench/bench_vocabulary.py`` (full size; HDBSCAN at 20,000 x 384 takes
minutes on a few cores); ``--quick`` (n=2,000) for a smoke check; ``--embed random`` without the model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from neuroscribe.workers.experts.alignment import load_word_pairs
from neuroscribe.workers.describe.vocabulary import Vocabulary, build_vocabulary, minilm_embedder

DIM = 384  # MiniLM's width; the random embeddings use the same
MODIFIERS = (
    "abandoned abstract aerial ancient black blonde blue blurred bright brown cold colorful curled cute dark"
    " dead dirty frozen green grey happy hot industrial miniature misty new old orange outdoor painted pink"
    " purple red relaxed round rusty small sunny sweet tall tropical underground underwater urban vintage"
    " wet white wild yellow"
).split()
NOT_NOUNS = set(
    "born drawn dripping dropped eat feel fell held left licking locked played posted signed sing sunk".split())
FACETS = ("quality", "imagery", "theme", "scene", "design", "style", "lover")
KINDS = ("word", "modifier noun", "noun noun", "modifier noun noun", "noun facet")
KIND_WEIGHTS = (0.03, 0.35, 0.35, 0.15, 0.12)


def men_words() -> list[str]:
    """The distinct words of the packaged MEN pairs, sorted."""
    return sorted({w.casefold() for p in load_word_pairs() for w in (p.word1, p.word2)})


def descriptor_phrases(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct 1-3 word phrases from the MEN words, the same for a given (n, seed)."""
    words = men_words()
    mods = sorted(set(MODIFIERS) & set(words))
    not_nouns = set(mods) | NOT_NOUNS
    nouns = [w for w in words if w not in not_nouns]
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}  # insertion-ordered set
    while len(seen) < n:
        kind = KINDS[rng.choice(len(KINDS), p=KIND_WEIGHTS)]
        noun = nouns[rng.integers(len(nouns))]
        if kind == "word":
            phrase = words[rng.integers(len(words))]
        elif kind == "modifier noun":
            phrase = f"{mods[rng.integers(len(mods))]} {noun}"
        elif kind == "noun noun":
            other = nouns[rng.integers(len(nouns))]
            phrase = f"{other} {noun}" if other != noun else noun
        elif kind == "modifier noun noun":
            phrase = f"{mods[rng.integers(len(mods))]} {nouns[rng.integers(len(nouns))]} {noun}"
        else:
            phrase = f"{noun} {FACETS[rng.integers(len(FACETS))]}"
        seen.setdefault(phrase)
    return list(seen)


def random_embeddings(n: int, seed: int = 0, per_blob: int = 50, background: float = 0.1) -> np.ndarray:
    """(n, DIM) float32 unit vectors: planted gaussian blobs (random unit centres, spreads varying
    0.5-1.5x around a within-blob distance of about 0.6) plus a ``background`` fraction uniform on
    the sphere; rows shuffled."""
    rng = np.random.default_rng(seed)
    n_bg = int(round(n * background))
    n_blobs = max(2, (n - n_bg) // per_blob)
    centres = rng.standard_normal((n_blobs, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    blob = rng.integers(n_blobs, size=n - n_bg)
    spread = 0.6 / np.sqrt(2 * DIM) * rng.uniform(0.5, 1.5, n_blobs)
    x = np.concatenate([centres[blob] + spread[blob, None] * rng.standard_normal((blob.size, DIM)),
                        rng.standard_normal((n_bg, DIM))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[rng.permutation(n)].astype(np.float32)


def stored_embedder(phrases: Sequence[str], x: np.ndarray):
    """An embedder returning the precomputed rows of the given phrases (in the order asked)."""
    row = {p: i for i, p in enumerate(phrases)}

    def embed(texts: Sequence[str]) -> np.ndarray:
        return x[[row[t] for t in texts]]

    return embed


def labels_of(v: Vocabulary, phrases: Sequence[str], noise: str) -> np.ndarray:
    """One integer label per phrase. ``noise``: "singleton" (each noise point its own label, i.e. the
    vocabulary name) or "shared" (all noise points one label, -1)."""
    name_id = {c.name: i for i, c in enumerate(v.clusters)}
    out = np.empty(len(phrases), dtype=np.int64)
    for i, p in enumerate(phrases):
        lab = name_id.get(v.mapping[p])
        out[i] = lab if lab is not None else (len(name_id) + i if noise == "singleton" else -1)
    return out


def timed_vocabulary(lists, embed, reduce_to, args) -> tuple[float, Vocabulary]:
    t0 = time.perf_counter()
    v = build_vocabulary(lists, embed, min_cluster_size=args.min_cluster_size, min_samples=args.min_samples,
                         reduce_to=reduce_to, selection=args.selection, seed=args.seed)
    return time.perf_counter() - t0, v


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=None, help="distinct descriptors (default 20000; 2000 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smoke check at n=2000")
    ap.add_argument("--embed", choices=("minilm", "random"), default="minilm")
    ap.add_argument("--reduce-to", type=int, default=32, help="PCA dimensions of the reduced arm (default 32)")
    ap.add_argument("--min-cluster-size", type=int, default=5)
    ap.add_argument("--min-samples", type=int, default=None)
    ap.add_argument("--selection", choices=("leaf", "eom"), default="leaf", help="HDBSCAN cluster selection")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of both arms; the best time of each is kept")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.n is None:
        args.n = 2_000 if args.quick else 20_000
    if args.n < 2 or args.repeats < 1 or args.reduce_to < 1:
        ap.error("--n must be >= 2, --repeats and --reduce-to >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {os.cpu_count()} CPU threads; load average before: {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    phrases = descriptor_phrases(args.n, args.seed)
    t_phrases = time.perf_counter() - t0
    words = [len(p.split()) for p in phrases]
    print(f"descriptors: {len(phrases)} distinct phrases from {len(men_words())} MEN words (seed {args.seed},"
          f" {t_phrases:.2f} s), words per phrase 1/2/3: {words.count(1)}/{words.count(2)}/{words.count(3)};"
          f" e.g. {', '.join(repr(p) for p in phrases[:6])}")

    t0 = time.perf_counter()
    if args.embed == "minilm":
        embedder = minilm_embedder()
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        x = embedder(phrases)
    else:
        t_load = 0.0
        x = random_embeddings(args.n, args.seed)
    t_embed = time.perf_counter() - t0
    load = f" (+ {t_load:.2f} s loading the model)" if args.embed == "minilm" else ""
    print(f"embeddings: {args.embed}, {x.shape[0]} x {x.shape[1]} {x.dtype}, {t_embed:.2f} s{load};"
          " shared by both arms")

    lists = [[p] for p in phrases]
    embed = stored_embedder(phrases, x)
    reduce_to = args.reduce_to if args.reduce_to < x.shape[1] else None
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    PCA(n_components=min(args.reduce_to, x.shape[1], len(phrases)), random_state=args.seed).fit_transform(
        np.asarray(x, dtype=np.float64))
    t_pca = time.perf_counter() - t0

    times: dict[str, list[float]] = {"full": [], "reduced": []}
    vocab: dict[str, Vocabulary] = {}
    for r in range(args.repeats):
        for arm, red in (("full", None), ("reduced", reduce_to)):
            t, vocab[arm] = timed_vocabulary(lists, embed, red, args)
            times[arm].append(t)
            print(f"  round {r + 1}/{args.repeats} {arm:7s}: {t:8.2f} s", flush=True)

    dims = {"full": x.shape[1], "reduced": x.shape[1] if reduce_to is None else min(reduce_to, len(phrases))}
    best = {arm: min(ts) for arm, ts in times.items()}
    print(f"\nHDBSCAN(min_cluster_size={args.min_cluster_size}, min_samples={args.min_samples}, "
          f"selection={args.selection}) via build_vocabulary, n={len(phrases)}, best of {args.repeats}:")
    print(f"{'arm':8s} {'dims':>5s} {'time':>10s} {'clusters':>9s} {'noise':>7s} {'largest':>8s} {'median size':>12s}")
    for arm in ("full", "reduced"):
        v = vocab[arm]
        sizes = [c.size for c in v.clusters] or [0]
        print(f"{arm:8s} {dims[arm]:5d} {best[arm]:9.2f}s {len(v.clusters):9d} {len(v.noise) / len(phrases):7.1%}"
              f" {max(sizes):8d} {int(np.median(sizes)):12d}")
    print(f"(PCA to {dims['reduced']} dims alone: {t_pca:.2f} s, included in the reduced arm's time)")
    ratio = best["reduced"] / best["full"]
    print(f"time ratio reduced/full: {ratio:.3f}x  (speed-up {1 / ratio:.1f}x)")

    full_s, red_s = (labels_of(vocab[a], phrases, "singleton") for a in ("full", "reduced"))
    full_n, red_n = (labels_of(vocab[a], phrases, "shared") for a in ("full", "reduced"))
    both = (full_n >= 0) & (red_n >= 0)
    ari = adjusted_rand_score(full_s, red_s)
    ari_shared = adjusted_rand_score(full_n, red_n)
    ari_both = adjusted_rand_score(full_n[both], red_n[both]) if both.sum() >= 2 else float("nan")
    noise_f, noise_r = full_n < 0, red_n < 0
    print(f"noise: in both {np.sum(noise_f & noise_r)}, only full {np.sum(noise_f & ~noise_r)},"
          f" only reduced {np.sum(~noise_f & noise_r)}, clustered in both {both.sum()}")
    print(f"ARI (vocabulary names; noise = singletons): {ari:.4f}")
    print(f"ARI (noise = one shared label):             {ari_shared:.4f}")
    print(f"ARI (only the {both.sum()} clustered in both):   {ari_both:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
