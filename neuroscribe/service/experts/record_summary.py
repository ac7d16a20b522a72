"""The few numbers an experts job's record shows (``JobKind.summary``, see ``service.results``)."""

from __future__ import annotations

from neuroscribe.service.results import generic_summary

__all__ = ["record_summary"]


def record_summary(result: dict) -> dict:
    """The generic summary plus the experts found, in all and per concept (the first 20)."""
    concepts = result.get("concepts") or []
    per = {c.get("concept", "?"): len(c.get("experts") or []) for c in concepts[:20]}
    return {**generic_summary(result), "n_experts": sum(len(c.get("experts") or []) for c in concepts),
            "experts_per_concept": per}
