"""Human alignment (docs/methods.md#a5): concept similarity vs human word-pair ratings.

A concept is a vector (its AP over all units, or a mean-pooled embedding: ``cosine_similarity_matrix``)
or an expert set (``binary_jaccard_similarity``). Spearman's rho between the model's similarities
and the human ratings is taken over the word pairs whose both words are requested concepts
(case-insensitive). Concepts in no such pair are reported as skipped, with the reason; pairs whose
model similarity is undefined (``nan``: a zero vector, two empty expert sets) are reported as
dropped. The default ratings are the packaged MEN collection (``neuroscribe/data/men/NOTICE.md``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.experts.overlap import jaccard_matrix
from neuroscribe.workers.textfiles import split_lines

__all__ = [
    "WordPair", "Skipped", "AlignmentResult", "load_word_pairs", "pairs_among", "cosine_similarity_matrix",
    "binary_jaccard_similarity", "human_alignment", "compare_alignment", "alignment_table", "check_pairs",
    "men_concepts", "NO_PAIR",
]

NO_PAIR = "not in any pair with another requested concept"
_POS = re.compile(r"-[nvj]$")
_MIN_PAIRS = 3
Similarity = Union[Callable[[str, str], float], tuple]  # callable, or (names, matrix) as returned below


class WordPair(NamedTuple):
    word1: str
    word2: str
    score: float


class Skipped(NamedTuple):
    concept: str
    reason: str


@dataclass(frozen=True)
class AlignmentResult:
    rho: float
    p_value: float
    n_pairs: int
    table: tuple[tuple[str, str, float, float], ...]  # (word1, word2, human, model) per pair used
    skipped: tuple[Skipped, ...]  # concepts in no usable pair, with the reason
    dropped_pairs: tuple[tuple[str, str, str], ...] = ()  # (word1, word2, reason): model similarity undefined

    def to_dict(self) -> dict:
        d = asdict(self)
        d["table"] = [dict(zip(("word1", "word2", "human", "model"), r)) for r in self.table]
        d["skipped"] = [s._asdict() for s in self.skipped]
        d["dropped_pairs"] = [dict(zip(("word1", "word2", "reason"), r)) for r in self.dropped_pairs]
        return d


def _packaged_men():
    return resources.files("neuroscribe") / "data" / "men" / "MEN_dataset_natural_form_full"


def load_word_pairs(path: str | Path | None = None) -> list[WordPair]:
    """Read ``word1 word2 score`` lines (whitespace-separated; an optional header line; blank lines
    and ``#`` comments skipped). ``None`` reads the packaged MEN. POS suffixes (``sun-n``) are stripped."""
    src = _packaged_men() if path is None else Path(path)
    where = "MEN" if path is None else str(path)
    try:
        text = src.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(where, f"cannot read the word-pair file: {exc}") from None
    pairs, header_possible = [], True
    for lineno, line in enumerate(split_lines(text), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            score = float(fields[2]) if len(fields) == 3 else float("nan")
        except ValueError:
            score = None  # a word where the score should be: a header on the first line, else an error
        if score is None and header_possible:
            header_possible = False  # e.g. "word1 word2 score"
            continue
        header_possible = False
        if score is None or not np.isfinite(score):
            raise InvalidInput(f"{where}:{lineno}", f"expected 'word1 word2 score' with a finite number, got {line.strip()!r}")
        pairs.append(WordPair(_POS.sub("", fields[0]), _POS.sub("", fields[1]), score))
    if not pairs:
        raise InvalidInput(where, "no word pairs in the file")
    return pairs


def pairs_among(pairs: Sequence[WordPair], concepts: Sequence[str]) -> tuple[list[WordPair], list[Skipped]]:
    """The pairs whose both words are (distinct) concepts, spelled as in ``concepts``, and the
    concepts in none of them with the reason. A pair listed twice (either order) is kept once."""
    spelled: dict[str, str] = {}
    for c in concepts:
        if c.casefold() in spelled:
            raise InvalidInput("concepts", f"{c!r} is given twice (case-insensitively)")
        spelled[c.casefold()] = c
    used, seen, in_file = [], set(), set()
    for p in pairs:
        a, b = p.word1.casefold(), p.word2.casefold()
        in_file.update((a, b))
        key = frozenset((a, b))
        if a in spelled and b in spelled and a != b and key not in seen:
            seen.add(key)
            used.append(WordPair(spelled[a], spelled[b], p.score))
    paired = {w.casefold() for p in used for w in (p.word1, p.word2)}
    skipped = [
        Skipped(c, NO_PAIR if c.casefold() in in_file else f"{NO_PAIR} (not in the word-pair file at all)")
        for c in concepts if c.casefold() not in paired
    ]
    return used, skipped


def cosine_similarity_matrix(vectors: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Names and the (C, C) cosine similarity of the concepts' vectors; ``nan`` for a zero vector."""
    names = list(vectors)
    arrs = [np.asarray(vectors[n], dtype=np.float64).ravel() for n in names]
    if len({a.size for a in arrs}) > 1:
        raise InvalidInput("vectors", f"vectors differ in length: {sorted({a.size for a in arrs})}")
    x = np.stack(arrs) if arrs else np.zeros((0, 0))
    norms = np.linalg.norm(x, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = x / np.where(norms > 0, norms, np.nan)[:, None]
    return names, np.clip(x @ x.T, -1.0, 1.0)


def binary_jaccard_similarity(experts: Mapping[str, Collection | np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Jaccard similarity of expert indicators: each value is a set of units (e.g. ``(layer, unit)``)
    or a 1-D boolean/0-1 indicator over all units. Two empty sets give ``nan``."""
    sets = {n: (set(np.flatnonzero(v).tolist()) if isinstance(v, np.ndarray) else v) for n, v in experts.items()}
    return jaccard_matrix(sets)


def _lookup(similarity: Similarity) -> Callable[[str, str], float]:
    if callable(similarity):
        return similarity
    a, b = similarity
    names, mat = (b, a) if isinstance(a, np.ndarray) else (a, b)
    pos = {n: i for i, n in enumerate(names)}
    mat = np.asarray(mat, dtype=np.float64)

    def sim(w1: str, w2: str) -> float:
        if w1 not in pos or w2 not in pos:
            raise InvalidInput("similarity", f"no row for concept {(w1 if w1 not in pos else w2)!r} in the matrix")
        return float(mat[pos[w1], pos[w2]])

    return sim


def _spearman(x, y) -> tuple[float, float]:
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input -> nan, reported as such
        r = spearmanr(x, y)
    return float(r.statistic), float(r.pvalue)


def _scored(sims: dict[str, Similarity], pairs, concepts, dataset: str):
    used, skipped = pairs_among(pairs, concepts)
    fns = {k: _lookup(s) for k, s in sims.items()}
    rows, dropped = [], []
    for p in used:
        vals = {k: f(p.word1, p.word2) for k, f in fns.items()}
        bad = [k for k, v in vals.items() if not np.isfinite(v)]
        if bad:
            dropped.append((p.word1, p.word2, f"model similarity undefined ({', '.join(bad)})"))
        else:
            rows.append((p, vals))
    if len(rows) < _MIN_PAIRS:
        extra = f"; {len(dropped)} more had an undefined model similarity" if dropped else ""
        raise InvalidInput(
            "concepts", f"only {len(rows)} {dataset} pairs found among the concepts (need >= {_MIN_PAIRS}){extra}"
        )
    return rows, tuple(skipped), tuple(dropped)


def human_alignment(
    similarity: Similarity, pairs: Sequence[WordPair], concepts: Sequence[str], *, dataset: str = "MEN"
) -> AlignmentResult:
    """Spearman rho between model similarity and human scores over the pairs among ``concepts``.

    ``similarity``: a function ``(word1, word2) -> float`` or a ``(names, matrix)`` tuple (either order).
    Fewer than 3 usable pairs raise ``InvalidInput("concepts", ...)`` with the count found.
    """
    rows, skipped, dropped = _scored({"model": similarity}, pairs, concepts, dataset)
    human = [p.score for p, _ in rows]
    model = [v["model"] for _, v in rows]
    rho, pv = _spearman(human, model)
    table = tuple((p.word1, p.word2, p.score, v["model"]) for p, v in rows)
    return AlignmentResult(rho, pv, len(rows), table, skipped, dropped)


def compare_alignment(
    experts_sim: Similarity, baseline_sim: Similarity, pairs: Sequence[WordPair], concepts: Sequence[str],
    *, dataset: str = "MEN",
) -> dict:
    """Experts' and baseline's rho side by side on the same pairs (those defined for both)."""
    rows, skipped, dropped = _scored({"experts": experts_sim, "baseline": baseline_sim}, pairs, concepts, dataset)
    human = [p.score for p, _ in rows]
    out: dict = {"n_pairs": len(rows)}
    for k in ("experts", "baseline"):
        rho, pv = _spearman(human, [v[k] for _, v in rows])
        out[k] = {"rho": rho, "p_value": pv}
    out["table"] = [{"word1": p.word1, "word2": p.word2, "human": p.score, **v} for p, v in rows]
    out["skipped"] = [s._asdict() for s in skipped]
    out["dropped_pairs"] = [dict(zip(("word1", "word2", "reason"), d)) for d in dropped]
    return out


def check_pairs(pairs: Sequence[WordPair], concepts: Sequence[str], *, dataset: str = "MEN") -> int:
    """The number of pairs among ``concepts``; ``InvalidInput("concepts", ...)`` naming it when below 3.
    Cheap: run it before any model or LLM work."""
    used, _ = pairs_among(pairs, concepts)
    if len(used) < _MIN_PAIRS:
        raise InvalidInput("concepts", f"only {len(used)} {dataset} pairs found among the {len(concepts)} concepts "
                                       f"(need >= {_MIN_PAIRS}); choose concepts that occur together in its pairs")
    return len(used)


def alignment_table(sims: Mapping[str, Similarity], pairs: Sequence[WordPair], concepts: Sequence[str],
                    *, dataset: str = "MEN") -> dict:
    """Every method's rho on the same pairs (those defined for all methods): ``compare_alignment``
    for any number of methods. Keys: n_pairs, rho {method: (rho, p)}, rows [(pair, {method: sim})],
    skipped, dropped."""
    rows, skipped, dropped = _scored(dict(sims), pairs, concepts, dataset)
    human = [p.score for p, _ in rows]
    rho = {k: _spearman(human, [v[k] for _, v in rows]) for k in sims}
    return {"n_pairs": len(rows), "rho": rho, "rows": rows, "skipped": skipped, "dropped": dropped}


def men_concepts(pairs: Sequence[WordPair], n: int, *, seed: int = 0) -> list[str]:
    """``n`` words (sorted) sharing many pairs: greedy growth from each of the 10 best-connected
    start words (add the word with most pairs into the chosen set; ties by degree, then a seeded
    order), each polished by 1-swap local search; the set with most pairs wins. Deterministic."""
    words = sorted({w.casefold() for p in pairs for w in (p.word1, p.word2)})
    if not 1 <= n <= len(words):
        raise InvalidInput("n", f"must be between 1 and {len(words)} (words in the pairs), got {n}")
    pos = {w: i for i, w in enumerate(words)}
    adj = np.zeros((len(words), len(words)), dtype=np.int64)
    for p in pairs:
        a, b = pos[p.word1.casefold()], pos[p.word2.casefold()]
        if a != b:
            adj[a, b] = adj[b, a] = 1
    deg = adj.sum(axis=1)
    tie = np.random.default_rng(seed).permutation(len(words)) / len(words)  # < 1: only breaks ties
    prio = deg * 1.0 + tie  # degree first, then the seeded order
    best, best_edges = None, -1
    for start in np.argsort(-prio, kind="stable")[:10]:
        chosen = np.zeros(len(words), dtype=bool)
        chosen[start] = True
        for _ in range(n - 1):
            gain = adj[:, chosen].sum(axis=1) * (deg.max() + 2.0) + prio
            gain[chosen] = -np.inf
            chosen[int(np.argmax(gain))] = True
        chosen = _swap_search(adj, chosen)
        edges = int(adj[np.ix_(chosen, chosen)].sum()) // 2
        if edges > best_edges:
            best, best_edges = chosen, edges
    return [words[i] for i in np.flatnonzero(best)]


def _swap_search(adj: np.ndarray, chosen: np.ndarray, max_rounds: int = 50) -> np.ndarray:
    """Swap one chosen word for one outside word while that adds pairs (first best swap each round)."""
    chosen = chosen.copy()
    for _ in range(max_rounds):
        links = adj[:, chosen].sum(axis=1)  # pairs each word has into the chosen set
        inside, outside = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        if outside.size == 0:
            break
        # swapping i (in) for o (out) changes the count by links[o] - adj[o, i] - links[i]
        delta = links[outside][None, :] - adj[np.ix_(inside, outside)] - links[inside][:, None]
        k = int(np.argmax(delta))
        if delta.flat[k] <= 0:
            break
        i, o = divmod(k, outside.size)
        chosen[inside[i]], chosen[outside[o]] = False, True
    return chosen
