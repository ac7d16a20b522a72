"""Section builders of the expert-neuron analysis suite: ``(result, fig_dir) -> Section | None``,
``None`` when the result holds nothing for them (see ``report_sections.SECTIONS`` for the order).

* ``warnings_section``: ``result.warnings``, first on the page.
* ``stability_section``: K-fold Jaccard at the job's tau and the (n+, n-, tau) subsample sweep.
* ``alignment_section``: Spearman rho against human word-pair ratings (MEN by default).
* ``sweep_section``: experts of more models / checkpoints, per layer, per step and per size.
* ``causal_section``: fixing a concept's experts vs random units.
"""

from __future__ import annotations

from pathlib import Path

from neuroscribe.jobs import ExpertsResult
from neuroscribe.service.experts.alignment_figures import men_scatter
from neuroscribe.service.experts.causal_figures import causal_effect
from neuroscribe.service.experts.stability_figures import stability_curves
from neuroscribe.service.experts.sweep_figures import sweep_per_layer, sweep_per_size, sweep_per_step
from neuroscribe.service.report.html import Section, esc, table
from neuroscribe.service.report.plotting import compact_number, csv_num, finite, write_csv

__all__ = ["alignment_section", "causal_section", "stability_section", "sweep_section", "warnings_section"]


def _f(v, spec: str = ".3f") -> str | None:
    """``v`` formatted, or ``None`` (shown as an em dash) when undefined."""
    v = finite(v)
    return None if v is None else format(v, spec)


def _ci_text(ci, spec: str = ".3f") -> str | None:
    if ci is None:
        return None
    lo, hi = (tuple(ci) + (None, None))[:2]
    lo, hi = _f(lo, spec), _f(hi, spec)
    if lo is None and hi is None:
        return None
    return f"[{lo or '—'}, {hi or '—'}]"


def _rel(path: Path, fig_dir: Path) -> str:
    return path.relative_to(fig_dir.parent).as_posix()


def _values(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


# --------------------------------------------------------------------------- warnings


def warnings_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    if not result.warnings:
        return None
    items = "".join(f"<li>{esc(w)}</li>" for w in result.warnings)
    return Section(f"Warnings ({len(result.warnings)})", body=f'<div class="note"><ul>{items}</ul></div>',
                   anchor="warnings")


# --------------------------------------------------------------------------- stability

_SWEEP_FIELDS = ("n_pos", "n_neg", "tau", "repeats", "jaccard", "n_pairs", "n_experts_mean", "n_experts_std",
                 "n_empty", "base_rate", "n_distinct")


def stability_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    st = result.stability
    if st is None or not st.concepts:
        return None
    fig = stability_curves(result, fig_dir)
    spec = st.spec
    k = st.concepts[0].folds.k
    tau = st.concepts[0].folds.tau
    intro = (
        f"<p>How reproducible the expert sets are. <b>K-fold</b>: the sentences of each concept are split into "
        f"K = {esc(k)} disjoint folds, experts are found on each fold at the job's tau = {esc(f'{tau:g}')}, and "
        "the table gives their mean pairwise Jaccard (over the fold pairs with at least one expert). "
        f"<b>Subsample sweep</b>: {esc(spec.repeats)} random subsamples of n+ ∈ {{{esc(_values(st.n_pos))}}} "
        f"positives and n− ∈ {{{esc(_values(st.n_neg))}}} negatives, experts at tau ∈ "
        f"{{{esc(_values(spec.taus))}}}; the figure shows, for each tau, the (n+, n−) whose subsamples overlap "
        "most.</p>"
        "<p>Points with tau ≤ the base rate n+/(n+ + n−) are excluded from “best”: an uninformative unit "
        "already has that AP, so chance units count as experts there. Points whose repeated subsamples all "
        "coincide (n+ and n− are all the data) are excluded too. The full grid is in the sweep CSV below.</p>"
    )
    note = "" if fig is not None else (
        '<p class="note">No tau has a sweep point above chance with experts, for any concept: no stability '
        "curve to draw.</p>")
    rows = [(c.concept, f"{c.folds.tau:g}", c.folds.k, _f(c.folds.jaccard), c.folds.n_pairs,
             ", ".join(compact_number(n) for n in c.folds.n_experts)) for c in st.concepts]
    folds = (f"<h3>K-fold stability at tau = {esc(f'{tau:g}')}</h3>"
             + table(("concept", "tau", "K", "mean Jaccard", "fold pairs", "experts per fold"), rows, {2, 3, 4}))
    out = fig_dir / "stability_sweep.csv"
    write_csv(out, ("concept", *_SWEEP_FIELDS),
               [(c.concept, *(csv_num(getattr(p, f)) if f in ("jaccard", "n_experts_std") else getattr(p, f)
                              for f in _SWEEP_FIELDS))
                for c in st.concepts for p in c.sweep])
    return Section("Stability of the expert sets", figures=() if fig is None else (fig,),
                   body=intro + note + folds, files=(_rel(out, fig_dir),), anchor="stability")


# --------------------------------------------------------------------------- alignment


def _dropped_row(d: dict) -> tuple:
    rest = {k: v for k, v in d.items() if k not in ("word1", "word2", "reason")}
    reason = d.get("reason") or ", ".join(f"{k}={v}" for k, v in rest.items()) or None
    return d.get("word1"), d.get("word2"), reason


def alignment_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    al = result.alignment
    if al is None:
        return None
    fig = men_scatter(result, fig_dir)
    ds = al.dataset
    intro = (f"<p>Spearman's ρ between the {esc(ds)} human similarity ratings of word pairs and the model's "
             f"similarity of the two concepts, over the {esc(al.n_pairs)} pairs whose both words are concepts "
             f"(and where every method is defined), so the methods are compared on the same pairs. Embedding "
             f"baselines are read at layer {esc(al.baseline_layer)}.</p>")

    def n_defined(method: str) -> int:
        return sum(1 for p in al.pairs if finite(p.similarity.get(method)) is not None)

    rows = [(m.method, m.description, _f(m.rho), _f(m.p_value, ".3g"), n_defined(m.method)) for m in al.methods]
    methods = table(("method", "description", "ρ", "p", "pairs"), rows, {2, 3, 4}) if rows else (
        '<p class="note">No method was scored.</p>')
    if al.skipped:
        skipped = (f"<h3>Concepts left out ({len(al.skipped)})</h3><p>Concepts in no usable {esc(ds)} pair "
                   "with another concept, and why:</p>"
                   + table(("concept", "reason"), [(s.concept, s.reason) for s in al.skipped]))
    else:
        skipped = f'<p class="muted">Every concept is in at least one {esc(ds)} pair used.</p>'
    dropped = ""
    if al.dropped_pairs:
        dropped = (f"<h3>Pairs dropped ({len(al.dropped_pairs)})</h3><p>A model similarity was undefined "
                   "(e.g. two empty expert sets):</p>"
                   + table(("word 1", "word 2", "reason"), [_dropped_row(d) for d in al.dropped_pairs]))
    return Section(f"Human alignment ({ds})", figures=() if fig is None else (fig,),
                   body=intro + methods + skipped + dropped, anchor="alignment")


# --------------------------------------------------------------------------- sweep


def sweep_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    sw = result.sweep
    if sw is None or not sw.entries:
        return None
    figs = tuple(f for f in (sweep_per_layer(result, fig_dir), sweep_per_step(result, fig_dir),
                             sweep_per_size(result, fig_dir)) if f is not None)
    warning = ""
    if sw.identical_weights:
        groups = "; ".join(" = ".join(g) for g in sw.identical_weights)
        warning = (f'<p class="note"><b>Identical weights:</b> {esc(groups)}. These entries loaded weight files '
                   "with the same sha256: their expert counts are one model's, not separate evidence (check "
                   "that each revision exists and was resolved as intended).</p>")
    intro = (f"<p>Experts at tau = {esc(f'{sw.tau:g}')} of {len(sw.entries)} models or checkpoints, each read "
             "at the main model's site, pooling and layers.</p>")
    rows = [(e.label, (e.revision or "")[:12] or None, e.weight_sha256[:12], compact_number(e.n_params),
             e.n_layers, e.total(), "yes" if e.from_cache else "no") for e in sw.entries]
    entries = table(("model", "resolved revision", "weight sha256", "params", "layers", "experts", "cache"),
                    rows, {3, 4, 5})
    out = fig_dir / "sweep_entries.csv"
    write_csv(out, ("label", "model", "requested_revision", "revision", "step", "random_init", "weight_sha256",
                     "n_params", "n_layers", "units_per_layer", "experts", "from_cache"),
               [(e.label, e.model, e.requested_revision or "", e.revision or "", "" if e.step is None else e.step,
                 e.random_init, e.weight_sha256, e.n_params, e.n_layers, e.units_per_layer, e.total(), e.from_cache)
                for e in sw.entries])
    return Section("Sweep across models and checkpoints", figures=figs, body=warning + intro + entries,
                   files=(_rel(out, fig_dir),), anchor="sweep")


# --------------------------------------------------------------------------- causal


def causal_section(result: ExpertsResult, fig_dir: Path) -> Section | None:
    cs = result.causal
    if cs is None:
        return None
    title = "Causal check"
    if cs.skipped:
        return Section(title, body=f'<p class="note">Not run: {esc(cs.skipped)}</p>', anchor="causal")
    fig = causal_effect(result, fig_dir)
    level = f"{cs.confidence * 100:g}%"
    intro = (f"<p>Each concept's experts are fixed to their median response on the concept's positive "
             f"sentences (site <code>{esc(cs.site)}</code>), and the change in log-probability of the concept "
             f"word after each of {len(cs.prompts)} neutral prompts is compared with fixing as many random units "
             f"of the same layers. Intervals: {esc(level)} Student-t over prompts (paired for the difference; "
             "undefined with one prompt).</p>")
    rows = [(c.concept, ", ".join(c.words), c.n_units, c.n_prompts, c.n_random,
             _f(c.mean_experts), _ci_text(c.ci_experts), _f(c.mean_random), _ci_text(c.ci_random),
             _f(c.mean_difference), _ci_text(c.ci_difference), c.skipped or "")
            for c in cs.concepts]
    header = ("concept", "words", "units fixed", "prompts", "random draws", "Δ experts", f"{level} CI",
              "Δ random", f"{level} CI", "difference", f"{level} CI", "not tested because")
    tab = table(header, rows, {2, 3, 4, 5, 6, 7, 8, 9, 10}) if rows else '<p class="note">No concept.</p>'
    prompts = "".join(f"<li>{esc(p)}</li>" for p in cs.prompts)
    details = f"<details><summary>The {len(cs.prompts)} prompts</summary><ol>{prompts}</ol></details>"
    return Section(title, figures=() if fig is None else (fig,), body=intro + tab + details, anchor="causal")
