"""Scoring a language model's own output, for the interventions (docs/methods.md#c3): decoders and masked LMs.

Effects on the model's own output (per example, intervened minus clean; ``effects.Delta``):

* decoders: ``continuation_logprob`` = sum over the continuation's tokens of log P(token | text, the
  tokens before it). ``LabelScorer`` scores ``text + suffix + continuations[c]`` for every
  class c: ``logprob`` = that of the example's label, ``logodds`` = logprob - log sum_{c' != label}
  P(continuation c') (binary: the plain log-odds against the other label), ``accuracy`` = 1 when the
  label's continuation is the most probable one (``label_measures``).
* masked LMs: ``MaskedScorer`` replaces whitespace word ``word_index`` (every sub-token
  whose character span overlaps it) by ONE mask token; ``logprob`` = log P(the word's first
  sub-token) there, ``accuracy`` = 1 when it is the top prediction.

A scorer is built once (texts validated and tokenized) and called with row indices: ``scorer(rows)``
-> ``{measure: (len(rows),) float64}``, ``scorer.measures`` the main measure first. Batches are
right-padded (``pad_batch``).

The attribute-bearing word's tokens (for edits at those positions only): ``word_positions`` holds,
per scored sequence, the token indices of the target word (``LabelScorer`` given ``word_index``:
every sub-token whose character span overlaps the word; ``MaskedScorer``: the one mask token that
stands for the word), None when the scorer has none; before each batch's forward pass the scorer
sets its ``position_mask`` (``activations.edits.PositionMask``) to the batch's rows.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import torch

from neuroscribe.errors import InvalidInput
from neuroscribe.workers.activations.edits import PositionMask
from neuroscribe.workers.activations.sites import get_architecture
from neuroscribe.workers.experts.causal import DECODER_MODEL_TYPES

__all__ = ["check_texts", "check_lm", "pad_batch", "pad_id", "continuation_logprob", "label_measures",
           "word_token_positions", "LabelScorer", "MaskedScorer"]


def check_texts(texts, name: str = "texts") -> list[str]:
    """``texts`` as a list of non-blank strings (``InvalidInput`` otherwise)."""
    if isinstance(texts, str) or not list(texts):
        raise InvalidInput(name, "expected a non-empty list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InvalidInput(f"{name}:{i}", f"text {i} is empty or not a string: {t!r}")
    return list(texts)


def check_lm(model, tokenizer, model_type: str | None, *, decoder: bool) -> str:
    """The model type, after checking the model is a decoder (or a masked LM) with its LM head."""
    mt = model_type or model.config.model_type
    get_architecture(mt)  # SiteNotFound for an architecture without hook sites
    if decoder != (mt in DECODER_MODEL_TYPES):
        want = "a causal decoder" if decoder else "a masked language model"
        raise InvalidInput("model_type", f"this measure needs {want}; {mt!r} is not one")
    if model.get_output_embeddings() is None:
        raise InvalidInput("model", "the model has no LM head: load it as AutoModelForCausalLM / "
                                    "AutoModelForMaskedLM")
    if not decoder and tokenizer.mask_token_id is None:
        raise InvalidInput("tokenizer", "the tokenizer has no mask token")
    return mt


def word_token_positions(offsets, special, span: tuple[int, int]) -> list[int]:
    """Indices of the non-special, non-empty tokens whose character span overlaps ``span`` = [a, b)."""
    a, b = span
    return [j for j, ((s, e), sp) in enumerate(zip(offsets, special)) if not sp and e > s and s < b and e > a]


def _word_span(text: str, w, i: int, fld: str) -> tuple[int, int]:
    """Character span of whitespace word ``w`` of ``text`` (text ``i``)."""
    words = [m.span() for m in re.finditer(r"\S+", text)]
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 0 <= w < len(words):
        raise InvalidInput(fld, f"word {w!r} is outside text {i}, which has {len(words)} words")
    return words[w]


def _encode_continuation(tokenizer, text: str, cont: str, fld: str, span: tuple[int, int] | None = None
                         ) -> tuple[list[int], int, list[int] | None]:
    """Token ids of ``text + cont`` (trailing special tokens dropped), the continuation's first position,
    and (given a character ``span`` of ``text``) the positions of the tokens overlapping it."""
    if not getattr(tokenizer, "is_fast", False):
        if span is not None:
            raise InvalidInput("tokenizer", "finding a word's tokens needs a fast tokenizer (character offsets)")
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        return ids + list(tokenizer(cont, add_special_tokens=False)["input_ids"]), len(ids), None
    enc = tokenizer(text + cont, add_special_tokens=True, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    b = len(text)
    pos = [j for j, ((s, e), sp) in enumerate(zip(enc["offset_mapping"], enc["special_tokens_mask"]))
           if not sp and e > b]
    if not pos:
        raise InvalidInput(fld, f"the continuation {cont!r} has no tokens")
    start = pos[0]
    if text[enc["offset_mapping"][start][0]:b].strip():
        raise InvalidInput(fld, f"the continuation {cont!r} merges with the end of the text into one token "
                                f"(start it with a space)")
    if start == 0:
        raise InvalidInput(fld, "the text has no tokens before the continuation")
    marks = None if span is None else word_token_positions(enc["offset_mapping"], enc["special_tokens_mask"], span)
    return list(enc["input_ids"][: pos[-1] + 1]), start, marks


def pad_batch(seqs: list[list[int]], pad: int, dev):
    """Right-padded ``(input_ids, attention_mask)`` of token-id lists, on ``dev``."""
    width = max(map(len, seqs))
    ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=dev)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=dev)
    return ids, mask


def pad_id(tokenizer) -> int:
    """The tokenizer's pad token id (0 without one)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _sequence_logprobs(model, encs: list[tuple[list[int], int]], pad: int, batch_size: int,
                       marks: list | None = None, position_mask: PositionMask | None = None) -> np.ndarray:
    """Per ``(ids, start)``: sum of log P(ids[j] | ids[:j]) for j >= start (right-padded batches);
    ``position_mask`` is set to each batch's ``marks`` before its forward pass."""
    dev = next(model.parameters()).device
    out = np.zeros(len(encs), dtype=np.float64)
    with torch.inference_mode():
        for s0 in range(0, len(encs), batch_size):
            chunk = encs[s0:s0 + batch_size]
            ids, mask = pad_batch([e[0] for e in chunk], pad, dev)
            if marks is not None and position_mask is not None:
                position_mask.set(marks[s0:s0 + batch_size], ids.shape[1], dev)
            logits = model(input_ids=ids, attention_mask=mask).logits
            b = [i for i, (x, st) in enumerate(chunk) for _ in range(st, len(x))]
            j = [p for x, st in chunk for p in range(st, len(x))]
            bt, jt = torch.tensor(b, device=dev), torch.tensor(j, device=dev)
            lp = torch.log_softmax(logits[bt, jt - 1].double(), dim=-1)[torch.arange(len(j), device=dev), ids[bt, jt]]
            np.add.at(out, s0 + np.asarray(b), lp.cpu().numpy())
    return out


def continuation_logprob(model, tokenizer, texts: Sequence[str], continuations: str | Sequence[str], *,
                         batch_size: int = 16) -> np.ndarray:
    """Per text, ``log P(continuation | text)`` summed over the continuation's tokens (float64)."""
    texts = check_texts(texts)
    conts = [continuations] * len(texts) if isinstance(continuations, str) else list(continuations)
    if len(conts) != len(texts):
        raise InvalidInput("continuations", f"{len(conts)} continuations for {len(texts)} texts")
    encs = [_encode_continuation(tokenizer, t, c, f"continuations:{i}")[:2]
            for i, (t, c) in enumerate(zip(texts, conts))]
    return _sequence_logprobs(model, encs, pad_id(tokenizer), int(batch_size))


def label_measures(lp: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """``logodds`` / ``logprob`` / ``accuracy`` of labels ``y`` from (rows, classes) log-probabilities."""
    own = lp[np.arange(len(lp)), y]
    others = np.where(np.arange(lp.shape[1]) == y[:, None], -np.inf, lp)
    mx = others.max(axis=1, keepdims=True)
    rest = mx[:, 0] + np.log(np.exp(others - mx).sum(axis=1))
    return {"logodds": own - rest, "logprob": own, "accuracy": (lp.argmax(axis=1) == y).astype(np.float64)}


class LabelScorer:
    """Decoder: per text, the log-probability of every label's continuation after ``text + suffix``;
    ``word_index`` (per text, or one for all): the target word whose tokens ``word_positions`` holds."""

    measures = ("logodds", "logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, labels, continuations, suffix: str, batch_size: int,
                 word_index=None):
        texts = check_texts(texts)
        if not isinstance(continuations, Mapping) or len(continuations) < 2:
            raise InvalidInput("continuations", "expected a mapping label -> continuation with 2+ labels")
        if len(labels) != len(texts):
            raise InvalidInput("labels", f"{len(labels)} labels for {len(texts)} texts")
        self.classes = list(continuations)
        for i, y in enumerate(labels):
            if y not in continuations:
                raise InvalidInput(f"labels:{i}", f"label {y!r} has no continuation")
        self.labels = list(labels)
        self.y = np.array([self.classes.index(y) for y in labels])
        wis, per_text = _word_indices(word_index, len(texts))
        self.encs, self.word_positions, self.position_mask = [], None if wis is None else [], PositionMask()
        for i, t in enumerate(texts):
            fld = f"word_index:{i}" if per_text else "word_index"
            span = None if wis is None else _word_span(t, wis[i], i, fld)
            encs = [_encode_continuation(tokenizer, t + suffix, continuations[c], f"continuations:{c}", span)
                    for c in self.classes]
            self.encs.append([e[:2] for e in encs])
            if span is not None:
                if not encs[0][2]:
                    raise InvalidInput(fld, f"word {t[span[0]:span[1]]!r} of text {i} has no token")
                self.word_positions.append([e[2] for e in encs])
        self.model, self.pad, self.batch_size = model, pad_id(tokenizer), int(batch_size)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        k = len(self.classes)
        marks = None if self.word_positions is None else [m for r in rows for m in self.word_positions[r]]
        lp = _sequence_logprobs(self.model, [e for r in rows for e in self.encs[r]], self.pad,
                                self.batch_size, marks, self.position_mask).reshape(len(rows), k)
        return label_measures(lp, self.y[rows])


def _word_indices(word_index, n: int) -> tuple[list | None, bool]:
    """(one word index per text or None, whether they were given per text)."""
    if word_index is None:
        return None, False
    per_text = isinstance(word_index, (Sequence, np.ndarray)) and not isinstance(word_index, str)
    wis = list(word_index) if per_text else [word_index] * n
    if len(wis) != n:
        raise InvalidInput("word_index", f"{len(wis)} word indices for {n} texts")
    return wis, per_text


class MaskedScorer:
    """Masked LM: per text, the log-probability of the masked word's first sub-token."""

    measures = ("logprob", "accuracy")

    def __init__(self, model, tokenizer, texts, word_index, batch_size: int):
        texts = check_texts(texts)
        if not getattr(tokenizer, "is_fast", False):
            raise InvalidInput("tokenizer", "masking a word needs a fast tokenizer (character offsets)")
        wis, per_text = _word_indices(word_index, len(texts))
        if wis is None:
            raise InvalidInput("word_index", "a masked-LM measure needs the target word of each text")
        self.encs = []
        unk = tokenizer.unk_token_id
        for i, (t, w) in enumerate(zip(texts, wis)):
            fld = f"word_index:{i}" if per_text else "word_index"
            a, b = _word_span(t, w, i, fld)
            enc = tokenizer(t, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
            pos = word_token_positions(enc["offset_mapping"], enc["special_tokens_mask"], (a, b))
            ids = list(enc["input_ids"])
            if not pos or ids[pos[0]] == unk:
                raise InvalidInput(fld, f"word {t[a:b]!r} of text {i} has no known token")
            self.encs.append((ids[:pos[0]] + [tokenizer.mask_token_id] + ids[pos[-1] + 1:], pos[0], ids[pos[0]]))
        self.word_positions = [[e[1]] for e in self.encs]  # the word is the one mask token
        self.position_mask = PositionMask()
        self.model, self.pad, self.batch_size = model, pad_id(tokenizer), int(batch_size)

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        dev = next(self.model.parameters()).device
        lp, acc = np.empty(len(rows)), np.empty(len(rows))
        with torch.inference_mode():
            for s0 in range(0, len(rows), self.batch_size):
                chunk = [self.encs[r] for r in rows[s0:s0 + self.batch_size]]
                ids, mask = pad_batch([c[0] for c in chunk], self.pad, dev)
                self.position_mask.set([[c[1]] for c in chunk], ids.shape[1], dev)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                at = logits[torch.arange(len(chunk), device=dev), torch.tensor([c[1] for c in chunk], device=dev)]
                tgt = torch.tensor([c[2] for c in chunk], device=dev)
                lp[s0:s0 + len(chunk)] = torch.log_softmax(at.double(), -1).gather(1, tgt[:, None])[:, 0].cpu().numpy()
                acc[s0:s0 + len(chunk)] = (at.argmax(-1) == tgt).double().cpu().numpy()
        return {"logprob": lp, "accuracy": acc}
