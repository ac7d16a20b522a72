"""Every description made on the calibration half, tested on the held-out half (docs/methods.md#b5).

The calibration half's assignment gives (unit, descriptor) descriptions; on the held-out half's
distinct sentences each becomes a prediction of the unit's response (``verification.verify``:
AUROC, AP, one-sided Mann-Whitney p, Benjamini-Hochberg across all pairs, and the same after
permuting the responses across sentences, which is what chance alone verifies). The result keeps,
per unit, every tested description with its held-out scores, and per run the counts beside the
null's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from neuroscribe.jobs.describe import HeldOutDescriptor, VerificationReport
from neuroscribe.workers.describe.exemplar_stream import first_occurrences
from neuroscribe.workers.describe.verification import verify

__all__ = ["held_out_verification", "rare_label_warnings", "RARE_LABEL_SHARE"]

# a label name on fewer of its own label's (described) sentences than this is rare: the LLM rarely writes it
RARE_LABEL_SHARE = 0.1


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def held_out_verification(calibration, texts: Sequence[str], sets, heldout_rows, responses: np.ndarray, *,
                          fdr: float, seed: int) -> tuple[VerificationReport, list[tuple[HeldOutDescriptor, ...]]]:
    """``calibration``: the calibration half's ``Assignment``; ``heldout_rows``: the held-out half's
    rows (the order of ``responses``' rows); ``sets``: every row's descriptor set (None: failed)."""
    heldout_rows = np.asarray(heldout_rows, np.int64)
    keep_rows = first_occurrences(texts, heldout_rows)  # distinct texts only
    position = {int(r): i for i, r in enumerate(heldout_rows)}
    keep = np.asarray([position[int(r)] for r in keep_rows], np.int64)
    holds = [sets[int(r)] for r in keep_rows]
    pairs = [(u, d.descriptor) for u, desc in enumerate(calibration.units) for d in desc.descriptors]
    per_unit: list[list[HeldOutDescriptor]] = [[] for _ in calibration.units]
    if not pairs:
        report = VerificationReport(fdr=fdr, n_heldout=len(keep_rows), n_pairs=0, n_testable=0, n_verified=0,
                                    n_units_tested=0, n_units_verified=0, n_verified_null=0)
        return report, [() for _ in per_unit]
    v = verify(np.asarray(responses)[keep], holds, pairs, fdr=fdr, null_seed=seed)
    for i, (u, d) in enumerate(pairs):
        per_unit[u].append(HeldOutDescriptor(
            descriptor=d, n_pos=int(v.n_pos[i]), n_neg=int(v.n_neg[i]), auroc=_num(v.auroc[i]), ap=_num(v.ap[i]),
            ap_chance=_num(v.ap_chance[i]), p=_num(v.p[i]), q=_num(v.q[i]), verified=bool(v.verified[i])))
    verified_units = {int(u) for u, ok in zip(v.unit, v.verified) if ok}
    report = VerificationReport(
        fdr=fdr, n_heldout=len(keep_rows), n_pairs=v.n_pairs, n_testable=v.n_testable, n_verified=v.n_verified,
        n_units_tested=len({u for u, _ in pairs}), n_units_verified=len(verified_units),
        n_verified_null=v.n_verified_null)
    ordered = [tuple(sorted(x, key=lambda h: (not h.verified, -(h.auroc or 0.0)))) for x in per_unit]
    return report, ordered


def rare_label_warnings(labels, sets, names: dict[str, str]) -> list[str]:
    """A warning per label name the generator rarely writes on the sentences that carry its label
    (e.g. "negative" on 1 of 150 negative reviews): such a reference can hardly be matched, and a
    unit's P@K against it measures the generator more than the unit."""
    out = []
    for label, name in sorted(names.items()):
        own = [s for lab, s in zip(labels, sets) if lab == label and s is not None]
        if not own:
            continue
        share = sum(name in s for s in own) / len(own)
        if 0 < share < RARE_LABEL_SHARE:
            out.append(f"the label name {name!r} is rare among the descriptors of the sentences labelled {label!r} "
                       f"({sum(name in s for s in own)} of {len(own)}, {100 * share:.0f}%): precision@K / recall@K "
                       "against it mostly measure the generator")
    return out
