"""What a describe result reports about LLM-written explanations of units (docs/methods.md#b7):
per unit its one-sentence explanation and its scores on held-out sentences, each beside the same
score of a shuffled explanation (another unit's), and per run the means with bootstrap intervals.

Frozen pydantic models inside ``DescribeResult.explanations``; every field added later has a
default, so an older result still parses.
"""

from __future__ import annotations

from pydantic import Field

from neuroscribe.jobs.common import Frozen

__all__ = ["DetectionScore", "UnitExplanation", "ScoreSummary", "ExplanationReport", "AUROC_NOTE"]

AUROC_NOTE = ("detection answers are yes/no, so its AUROC equals its balanced accuracy (one threshold); no graded "
              "score is asked for")


class DetectionScore(Frozen):
    """The LLM's yes/no answers on held-out sentences against the unit's real firing."""

    balanced_accuracy: float | None = Field(None, description="(TPR + TNR) / 2 over the parsed answers; 0.5 = "
                                                              "chance. None: no parsed answer on one side.")
    true_positive_rate: float | None = Field(None, description="Share of the firing sentences answered yes.")
    true_negative_rate: float | None = Field(None, description="Share of the non-firing sentences answered no.")
    n_pos: int = Field(0, description="Firing sentences with a parsed answer.")
    n_neg: int = Field(0, description="Non-firing sentences with a parsed answer.")
    n_unparsed: int = Field(0, description="Answers that were neither yes nor no (left out).")


class UnitExplanation(Frozen):
    layer: int
    unit: int
    verified: bool = Field(False, description="It has a description verified on the held-out half (B.5).")
    explanation: str | None = Field(None, description="One sentence (None: the generation failed to parse).")
    failure: str | None = Field(None, description="Why there is no explanation.")
    n_firing_shown: int = Field(0, description="Calibration sentences it fires on, shown to the LLM.")
    n_contrast_shown: int = Field(0, description="Calibration sentences it does not fire on, shown as contrast.")
    shuffled_from: tuple[int, int] | None = Field(None, description="(layer, unit) whose explanation is this unit's "
                                                                    "shuffled baseline.")
    shuffled_explanation: str | None = None
    detection: DetectionScore | None = None
    shuffled_detection: DetectionScore | None = Field(None, description="The shuffled explanation on the same "
                                                                        "sentences.")
    embedding_auroc: float | None = Field(None, description="AUROC of the MiniLM cosine of the explanation to each "
                                                            "held-out sentence against the unit's firing.")
    shuffled_embedding_auroc: float | None = None
    embedding_n_pos: int = Field(0, description="Held-out sentences it fires on (embedding score).")
    embedding_n_neg: int = 0


class ScoreSummary(Frozen):
    """A score's mean over the explained units beside the shuffled explanations' mean, and their
    paired difference, each with a bootstrap interval over units."""

    n_units: int = Field(..., description="Units with both scores defined.")
    chance: float = 0.5
    mean: float | None = None
    ci: tuple[float, float] | None = None
    shuffled_mean: float | None = None
    shuffled_ci: tuple[float, float] | None = None
    difference_mean: float | None = Field(None, description="Mean of explanation minus shuffled, per unit.")
    difference_ci: tuple[float, float] | None = None
    verdict: str = Field("", description="above / not above the shuffled baseline; 'below chance' when so.")


class ExplanationReport(Frozen):
    """Explanations of the verified and the top-firing units, scored on the held-out half."""

    prompt_version: str
    detection_prompt_version: str
    selection: str = Field("", description="Which units were explained, in what order.")
    n_requested: int = Field(..., description="explain_units of the job.")
    detection_sentences: int = Field(..., description="Held-out sentences asked per class (firing, not) and unit.")
    calibration_sample: int = Field(0, description="Calibration sentences whose responses were kept for contrast.")
    n_selected: int = Field(0, description="Units sent to the LLM.")
    n_explained: int = Field(0, description="Of them, with a parsed explanation.")
    failures: dict[str, int] = Field(default_factory=dict, description="Explanation failure reason -> units.")
    n_detection_requests: int = 0
    detection_failures: dict[str, int] = Field(default_factory=dict, description="Unparsed answer reason -> count.")
    n_embedding_sentences: int = Field(0, description="Held-out sentences embedded (the embedding score's pool).")
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    detection: ScoreSummary | None = None
    embedding: ScoreSummary | None = None
    auroc_note: str = AUROC_NOTE
    units: tuple[UnitExplanation, ...] = ()
