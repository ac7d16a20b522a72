"""Every unit's responses on a seeded sample of the calibration half (docs/methods.md#b7), so that an
explanation can be shown sentences of that half on which the unit does *not* fire.

The streaming exemplars pass (``exemplar_stream``) keeps each half's top k% and every response of
the validation half, but of the calibration half only its top: a unit's non-firing sentences there
are unknown. This captures the responses of at most ``SAMPLE`` distinct calibration sentences (one
extra forward pass over them, run by the activate stage beside the exemplars), with the same site,
pooling, layers and firing thresholds. Nothing of the held-out half is used, so the explanations
stay made from the calibration half alone.

Saved as ``calibration_sample.npz`` (rows, responses float16) in the exemplars folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neuroscribe.workers.describe.exemplar_stream import first_occurrences

__all__ = ["CalibrationSample", "calibration_sample", "sample_rows", "SAMPLE"]

SAMPLE = 256  # calibration sentences whose responses are kept: ~SAMPLE * (1 - density) non-firing ones per unit


@dataclass
class CalibrationSample:
    rows: np.ndarray  # (S,) sorted global rows of distinct calibration sentences
    responses: np.ndarray  # (S, U) float16, units layer-major as in the exemplars

    FILE = "calibration_sample.npz"

    def save(self, directory: Path) -> None:
        np.savez(Path(directory) / self.FILE, rows=self.rows, responses=self.responses)

    @classmethod
    def load(cls, directory: Path) -> "CalibrationSample | None":
        path = Path(directory) / cls.FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return cls(z["rows"], z["responses"])


def sample_rows(texts: Sequence[str], calibration: Sequence[int], size: int, seed: int) -> np.ndarray:
    """At most ``size`` distinct calibration rows, seeded, sorted."""
    distinct = first_occurrences(texts, calibration)
    if distinct.size <= size:
        return distinct
    rng = np.random.default_rng([seed, 17])
    return np.sort(rng.choice(distinct, size=size, replace=False))


def calibration_sample(job, subject, halves: Sequence[Sequence[int]], *, size: int = SAMPLE) -> CalibrationSample | None:
    """Responses of every unit of the job's layers on a sample of the calibration half ``halves[0]``;
    None when the job asks for no explanations or has no halves."""
    if not job.explain_units or len(halves) != 2:
        return None
    from neuroscribe.workers.activations import capture_responses
    from neuroscribe.workers.activations.capture import check_layers

    spec = job.model
    rows = sample_rows(job.dataset.texts, halves[0], size, job.seed)
    layers = check_layers(spec.layers, subject.n_layers)
    resp = capture_responses(subject, [job.dataset.texts[int(r)] for r in rows], site=spec.site,
                             pooling=spec.pooling.value, layers=layers, batch_size=spec.batch_size,
                             max_length=spec.max_length, progress=False)
    return CalibrationSample(rows.astype(np.int64), resp.matrix(layers).astype(np.float16))
