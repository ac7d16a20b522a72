"""GPU check: capture throughput, the AP kernel on the GPU, streaming exemplars at Pythia-1.4B width.

One script, one run, every comparison side by side against its baseline (see ``bench/gpu/README.md``
for how to run it through the device tool). Nothing is downloaded: models are random inits from
configs with real shapes, the tokenizer is a word-level one built in memory over synthetic words.

  matmul     the card's measured rate: a large bf16 (and fp32) ``torch.matmul``, timed here; the
             reference for the model-FLOPs utilisation (MFU) below.
  capture    BERT-base, Pythia-160M, Pythia-1.4B shapes (``AutoModel.from_config``, fixed seed), in
             fp32 then bf16: ``capture_responses`` (all layers, mlp_post, max pooling) against a bare
             ``model(**batch)`` over the same length-sorted batches; timed round-robin, medians.
             tokens/s of each, ratio capture/bare, and MFU = tokens/s x 2 x non-embedding params /
             measured bf16 matmul FLOP/s (and / the fp32 rate for fp32).
  ap         ``average_precision`` (numpy, CPU) against a torch sort-based AP in float64 on the
             device (``ap_torch`` below: the same tie rule), on the same random float16 responses
             with ties, -0.0 and dead units; asserts max |difference| <= 1e-9; both times, ratio.
  exemplars  Pythia-1.4B width (24 x 8192 units): ``stream_exemplars`` (window by window capture,
             streaming top-k on the CPU) against the same windows captured into one dense float16
             matrix + ``dense_topk`` (stable argsort); identical exemplar sets required; time and
             peak memory (tracemalloc of the host, CUDA allocator peak, RSS high-water) ratios.

A time budget (``--budget``, default 420 s) guards every step: a step whose estimate would overrun
it is skipped with a printed note (and listed under ``skipped`` in the JSON). ``--tiny`` shrinks every
shape (2 layers, hidden 32, few sentences, few units) and allows ``--device cpu``: the CI dry run.
Exit status: 0 when every check that ran passed, 1 when one failed, 2 when the run could not start.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as `python3 bench/gpu/check.py` from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    from neuroscribe.workers.activations.capture import capture_responses, iter_batches, tokenize_texts
    from neuroscribe.workers.activations.loading import SubjectModel
    from neuroscribe.workers.activations.sites import get_architecture
    from neuroscribe.workers.describe.exemplar_stream import stream_exemplars
    from neuroscribe.workers.describe.exemplars import dense_topk, n_exemplars, row_chunks, top_exemplars
    from neuroscribe.workers.experts.ap import average_precision
except ModuleNotFoundError as _err:  # the device image lacks pydantic: carry its wheels (README.md)
    print(f"cannot import neuroscribe: {_err}. On the device machine, carry bench/gpu/.whl and install it first"
          " (see bench/gpu/README.md).", file=sys.stderr)
    raise SystemExit(2) from None

AP_TOL = 1e-9
TOP_PERCENT = 1.0

# Real shapes (no weights): BERT-base, Pythia-160M, Pythia-1.4B.
MODELS: dict[str, dict] = {
    "bert-base": dict(model_type="bert", num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                      num_attention_heads=12, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2,
                      pad_token_id=0),
    "pythia-160m": dict(model_type="gpt_neox", num_hidden_layers=12, hidden_size=768, intermediate_size=3072,
                        num_attention_heads=12, vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25,
                        use_parallel_residual=True),
    "pythia-1.4b": dict(model_type="gpt_neox", num_hidden_layers=24, hidden_size=2048, intermediate_size=8192,
                        num_attention_heads=16, vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25,
                        use_parallel_residual=True),
    # Opt-in (--models ...,llama-3.1-8b): the scale of the issue-17 plan (458,752 MLP units); bf16 only.
    "llama-3.1-8b": dict(model_type="llama", num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         max_position_embeddings=8192, rope_theta=500000.0),
}
DEFAULT_MODELS = ("bert-base", "pythia-160m", "pythia-1.4b")
BF16_ONLY = {"llama-3.1-8b"}  # an fp32 copy would take 32 GB and minutes; the plan needs the bf16 rate
TINY_SHAPE = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4)
EXEMPLAR_MODEL = "pythia-1.4b"


@dataclass
class Sizes:
    capture_sentences: int
    batch_size: int
    max_length: int
    repeats: int
    ap_units: int
    ap_sentences: int
    ex_sentences: int
    ex_window: int
    matmul_n: int
    vocab_words: int


FULL = Sizes(capture_sentences=4096, batch_size=64, max_length=128, repeats=3, ap_units=9216, ap_sentences=2000,
             ex_sentences=4096, ex_window=512, matmul_n=8192, vocab_words=8000)
TINY = Sizes(capture_sentences=40, batch_size=16, max_length=48, repeats=1, ap_units=300, ap_sentences=120,
             ex_sentences=150, ex_window=64, matmul_n=256, vocab_words=500)


# --------------------------------------------------------------------------- helpers


class Budget:
    """Wall-clock budget for the whole run; ``allow`` prints a note and records a skip when a step's
    estimate would overrun it."""

    def __init__(self, seconds: float):
        self.t0 = time.perf_counter()
        self.limit = float(seconds)
        self.skipped: list[dict] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.limit - self.elapsed()

    def allow(self, what: str, estimate: float) -> bool:
        if estimate <= self.left():
            return True
        note = f"needs ~{estimate:.0f} s, {max(0.0, self.left()):.0f} s left of the {self.limit:.0f} s budget"
        print(f"SKIP {what}: {note}")
        self.skipped.append({"step": what, "estimate_s": round(estimate, 1), "left_s": round(self.left(), 1)})
        return False


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device):
    sync(dev)
    t = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t, out


def free(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def rss_hwm_reset() -> bool:
    """Reset the process's RSS high-water mark (Linux: clear_refs 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of a block: host numpy allocations (tracemalloc), the CUDA allocator, RSS high-water."""

    def __init__(self, dev: torch.device):
        self.dev = dev

    def __enter__(self) -> "PeakMemory":
        free(self.dev)
        tracemalloc.start()  # first: its own tables are not counted in the RSS high-water below
        self.base = tracemalloc.get_traced_memory()[0]
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
            self.cuda0 = torch.cuda.memory_allocated(self.dev)
        self.hwm_ok = rss_hwm_reset()
        self.rss0 = rss_kib("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.traced = tracemalloc.get_traced_memory()[1] - self.base
        tracemalloc.stop()
        hwm = rss_kib("VmHWM")
        self.rss = (hwm - self.rss0) * 1024 if self.hwm_ok and hwm is not None and self.rss0 is not None else None
        self.cuda = (torch.cuda.max_memory_allocated(self.dev) - self.cuda0) if self.dev.type == "cuda" else None

    def as_dict(self) -> dict:
        return {"tracemalloc_peak_bytes": self.traced, "rss_peak_above_start_bytes": self.rss,
                "cuda_peak_above_start_bytes": self.cuda}


def mib(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:,.1f} MiB"


def ratio(a, b):
    return None if a is None or b is None or not b else a / b


def fmt_ratio(x) -> str:
    return "n/a" if x is None else f"{x:.3f}x"


# --------------------------------------------------------------------------- synthetic text, tokenizer, models


def make_words(n: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: dict[str, None] = {}
    while len(words) < n:
        length = int(rng.integers(2, 10))
        words["".join(rng.choice(letters, length))] = None
    return list(words)


def make_sentences(n: int, words: list[str], rng: np.random.Generator) -> list[str]:
    """Random-word sentences of review-like length: ~22 words (log-normal, 4..100), ending in a full stop."""
    lengths = np.clip(np.rint(rng.lognormal(math.log(20.0), 0.5, n)), 4, 100).astype(int)
    idx = rng.integers(0, len(words), int(lengths.sum()))
    out, pos = [], 0
    for m in lengths:
        out.append(" ".join(words[i] for i in idx[pos:pos + m]) + " .")
        pos += m
    return out


def make_tokenizer(model_type: str, words: list[str]):
    """A word-level fast tokenizer built in memory: BERT adds [CLS] ... [SEP] and pads with [PAD];
    GPT-NeoX adds nothing and pads with its eos (as ``load_subject_model`` does)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>"]
    vocab = {w: i for i, w in enumerate(specials + [".", ","] + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if model_type == "bert":
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        kw = dict(unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    else:
        kw = dict(unk_token="[UNK]", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                  pad_token="<|endoftext|>")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, model_max_length=512, **kw)
    tok.padding_side = "right"
    return tok


def model_config(name: str, tiny: bool):
    from transformers import AutoConfig

    spec = dict(MODELS[name])
    if tiny:
        spec.update(TINY_SHAPE)
        if "num_key_value_heads" in spec:
            spec["num_key_value_heads"] = 2
    return AutoConfig.for_model(spec.pop("model_type"), **spec)


def build_subject(name: str, tokenizer, dev: torch.device, tiny: bool, seed: int,
                  dtype: torch.dtype = torch.float32) -> SubjectModel:
    """A random init of ``name``'s shape (fixed seed) in ``dtype``, made on the device, as a ``SubjectModel``."""
    from transformers import AutoModel

    config = model_config(name, tiny)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    with torch.device(dev):
        model = AutoModel.from_config(config, dtype=dtype)
    model.to(dev).eval()
    n_layers = get_architecture(config.model_type).n_layers(config)
    return SubjectModel(model=model, tokenizer=tokenizer, model_id=f"{name} (random init, seed {seed})", revision=None,
                        weight_sha256=f"random-init-seed-{seed}", model_type=config.model_type, n_layers=n_layers,
                        path=Path("."), device=dev)


def param_counts(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    return total, total - emb


# --------------------------------------------------------------------------- 0. matmul rate


def matmul_rate(dev: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """FLOP/s of an (n x n) @ (n x n) product in ``dtype`` on ``dev`` (3 warm-ups, mean of ``reps``)."""
    g = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=dev, dtype=dtype, generator=g)
    c = torch.empty(n, n, device=dev, dtype=dtype)

    def run(times: int) -> None:
        for _ in range(times):
            torch.matmul(a, b, out=c)

    run(3)
    dt, _ = timed(lambda: run(reps), dev)
    return 2.0 * n ** 3 * reps / dt


def part_matmul(dev: torch.device, sizes: Sizes, budget: Budget) -> dict:
    out = {"n": sizes.matmul_n, "allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        if not budget.allow(f"matmul {name}", 10.0):
            continue
        rate = matmul_rate(dev, dtype, sizes.matmul_n)
        out[f"{name}_tflops"] = rate / 1e12
        print(f"matmul   {name}  {sizes.matmul_n}^3: {rate / 1e12:,.1f} TFLOP/s (measured)")
    return out


# --------------------------------------------------------------------------- 1. capture throughput


def part_capture(name: str, dev: torch.device, sizes: Sizes, args, budget: Budget, texts: list[str],
                 words: list[str], rates: dict) -> tuple[dict, SubjectModel | None]:
    """Bare forward vs ``capture_responses`` of one model shape, fp32 then bf16; returns the results
    and the subject (left in bf16)."""
    config = model_config(name, args.tiny)
    params_est = MODELS[name]["num_hidden_layers"] * 12 * MODELS[name]["hidden_size"] ** 2 if not args.tiny else 1e5
    dtypes = [("bf16", torch.bfloat16)] if name in BF16_ONLY else [("fp32", torch.float32), ("bf16", torch.bfloat16)]
    if not budget.allow(f"capture {name}: build", 5.0 + (10.0 if name in BF16_ONLY else 20.0) * params_est / 1e9):
        return {"skipped": "budget"}, None
    tokenizer = make_tokenizer(config.model_type, words)
    t_build, subject = timed(lambda: build_subject(name, tokenizer, dev, args.tiny, args.seed, dtypes[0][1]), dev)
    total, nonemb = param_counts(subject.model)
    flops_per_token = 2.0 * nonemb
    tok = tokenize_texts(tokenizer, texts, sizes.max_length)
    pad = tokenizer.pad_token_id or 0
    batches = [b.model_inputs() for b in iter_batches(tok, sizes.batch_size, sort_by_length=True, pad_id=pad,
                                                     device=dev)]
    n_tokens = int(tok.lengths.sum())
    n_padded = int(sum(b["input_ids"].numel() for b in batches))
    res = {"model_type": config.model_type, "layers": subject.n_layers, "hidden": config.hidden_size,
           "intermediate": config.intermediate_size, "params": total, "params_non_embedding": nonemb,
           "flops_per_token": flops_per_token, "build_s": t_build, "sentences": len(texts), "tokens": n_tokens,
           "tokens_padded": n_padded, "batch_size": sizes.batch_size, "max_length": sizes.max_length}
    print(f"capture  {name}: {subject.n_layers} layers x {config.intermediate_size} units, {nonemb / 1e6:,.3g}M"
          f" non-embedding params ({total / 1e6:,.4g}M in all); {len(texts)} sentences, {n_tokens:,} tokens"
          f" ({n_padded:,} padded), batch {sizes.batch_size}; built in {t_build:.1f} s")

    def bare(bs=batches):
        with torch.inference_mode():
            for batch in bs:
                subject.model(**batch)

    def capture(subset=texts):
        return capture_responses(subject, subset, site="mlp_post", pooling="max", batch_size=sizes.batch_size,
                                 max_length=sizes.max_length, progress=False)

    for dname, dtype in dtypes:
        if dtype != next(subject.model.parameters()).dtype:
            subject.model.to(dtype)
            free(dev)
        warm = texts[: 2 * sizes.batch_size]
        warm_tokens = int(tok.lengths[: len(warm)].sum())
        capture(warm), bare(batches[:2])  # warm-up: kernels chosen, allocator grown
        t_probe, _ = timed(lambda: capture(warm), dev)  # the slowest of the two paths, for the estimate
        per_pass = t_probe * n_tokens / max(1, warm_tokens)
        repeats = max(0, min(sizes.repeats if args.repeats is None else args.repeats,
                             int(budget.left() // max(1e-6, 2.2 * per_pass))))
        if repeats == 0:
            budget.allow(f"capture {name} {dname}", 2.2 * per_pass)
            res[dname] = {"skipped": "budget"}
            continue
        times: dict[str, list[float]] = {"bare": [], "capture": []}
        for _ in range(repeats):  # round-robin: a load change hits both alike
            times["bare"].append(timed(bare, dev)[0])
            times["capture"].append(timed(capture, dev)[0])
        t_bare, t_cap = statistics.median(times["bare"]), statistics.median(times["capture"])
        r = {"repeats": repeats, "bare_s": t_bare, "capture_s": t_cap, "bare_tokens_per_s": n_tokens / t_bare,
             "capture_tokens_per_s": n_tokens / t_cap, "ratio_capture_over_bare": t_bare / t_cap,
             "times": times}
        for ref in ("bf16", dname):
            peak = rates.get(f"{ref}_tflops")
            if peak:
                r[f"mfu_bare_vs_{ref}_matmul"] = r["bare_tokens_per_s"] * flops_per_token / (peak * 1e12)
                r[f"mfu_capture_vs_{ref}_matmul"] = r["capture_tokens_per_s"] * flops_per_token / (peak * 1e12)
        res[dname] = r
        mfu = ""
        if "mfu_bare_vs_bf16_matmul" in r:
            mfu = (f"  MFU bare {100 * r['mfu_bare_vs_bf16_matmul']:.1f}% capture"
                   f" {100 * r['mfu_capture_vs_bf16_matmul']:.1f}% of the bf16 matmul rate")
            if dname == "fp32" and "mfu_bare_vs_fp32_matmul" in r:
                mfu += (f" ({100 * r['mfu_bare_vs_fp32_matmul']:.1f}% / {100 * r['mfu_capture_vs_fp32_matmul']:.1f}%"
                        " of the fp32 one)")
        print(f"capture  {name:<12s} {dname}  bare {r['bare_tokens_per_s']:>12,.0f} tok/s  capture"
              f" {r['capture_tokens_per_s']:>12,.0f} tok/s  ratio capture/bare {r['ratio_capture_over_bare']:.3f}x"
              f"{mfu}  (median of {repeats})")
    del batches
    return res, subject


# --------------------------------------------------------------------------- 2. AP on the device


def ap_torch(scores: torch.Tensor, labels: torch.Tensor, *, chunk_elems: int = 1 << 25) -> torch.Tensor:
    """AP of every column of ``scores`` (n, U) for bool ``labels`` (n,), float64 (U,), on the tensors'
    device: the tie rule of ``neuroscribe.workers.experts.ap`` (= sklearn's), by sorting.

    Per unit, sorted descending, a run of equal values [a, b] has all(>= v) = b + 1 units and
    tp(>= v) = positives in [0, b]; AP = (1/P) * sum over positives of tp(>= v) / all(>= v), i.e.
    sum over distinct v of npos(v) * tp(>= v) / all(>= v). Equality is float equality, so
    -0.0 == +0.0. Computed in float64 (float16/bfloat16/float32 widen exactly)."""
    n, n_units = scores.shape
    y = labels.to(scores.device, torch.bool)
    n_pos = int(y.sum())
    if n_pos in (0, n):
        raise ValueError("labels need at least one positive and one negative")
    out = torch.empty(n_units, dtype=torch.float64, device=scores.device)
    step = max(1, min(n_units, chunk_elems // max(1, n)))
    idx = torch.arange(n, device=scores.device)
    for j0 in range(0, n_units, step):
        x = scores[:, j0:j0 + step].to(torch.float64).T  # (c, n)
        if torch.isnan(x).any():
            raise ValueError("scores contain NaN")
        vals, order = torch.sort(x, dim=1, descending=True)
        pos = y[order]  # (c, n) labels in sorted order
        tp = torch.cumsum(pos, dim=1, dtype=torch.float64)
        last = torch.ones_like(pos)
        last[:, :-1] = vals[:, 1:] != vals[:, :-1]  # the last position of each run of ties
        end = torch.where(last, idx, n)
        end = torch.flip(torch.cummin(torch.flip(end, [1]), dim=1).values, [1])  # run end of every position
        prec = tp.gather(1, end) / (end + 1).to(torch.float64)
        out[j0:j0 + step] = (prec * pos).sum(dim=1) / n_pos
    return out


def ap_data(n: int, n_units: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float16 (n, U) responses with ties: a third ReLU-like rounded to 0.1 (half tied at 0), a third
    GELU-like with negatives and -0.0 rounded to 0.05, a third continuous; a few dead units and
    units over a handful of values. Labels: ~30% positives."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_units), dtype=np.float32)
    a, b = n_units // 3, 2 * n_units // 3
    x[:, :a] = np.maximum(x[:, :a], 0).round(1)
    g = x[:, a:b]
    g = (g * 0.5 * (1.0 + np.tanh(0.7978845608 * (g + 0.044715 * g ** 3)))).round(2)
    g[g == 0] = np.where(rng.random(int((g == 0).sum())) < 0.5, -0.0, 0.0)
    x[:, a:b] = g
    few = np.array([-2.0, -1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0], np.float32)
    cols = rng.choice(n_units, size=max(2, n_units // 50), replace=False)
    x[:, cols] = few[rng.integers(0, few.size, (n, cols.size))]
    x[:, cols[:2]] = 0.0  # dead units: every positive tied
    labels = rng.random(n) < 0.3
    labels[0], labels[1] = True, False
    return x.astype(np.float16), labels


def part_ap(dev: torch.device, sizes: Sizes, args, budget: Budget) -> dict:
    n, n_units = sizes.ap_sentences, sizes.ap_units
    if not budget.allow("ap", 5.0 + 4e-7 * n * n_units):
        return {"skipped": "budget"}
    x, labels = ap_data(n, n_units, args.seed)
    threads = os.cpu_count() or 1
    average_precision(x[:, :64], labels)  # warm-up (page faults, first calls)
    t_cpu, ref = timed(lambda: average_precision(x, labels), torch.device("cpu"))
    t_cpu_mt, ref_mt = timed(lambda: average_precision(x, labels, threads=threads), torch.device("cpu"))
    ap_torch(torch.from_numpy(x[:, :64]).to(dev), torch.from_numpy(labels).to(dev))  # warm-up
    t_gpu_all, got = timed(lambda: ap_torch(torch.from_numpy(x).to(dev), torch.from_numpy(labels).to(dev))
                           .cpu().numpy(), dev)
    xd, yd = torch.from_numpy(x).to(dev), torch.from_numpy(labels).to(dev)
    reps = 3
    t_gpu = min(timed(lambda: ap_torch(xd, yd), dev)[0] for _ in range(reps))
    diff = float(np.max(np.abs(got - ref)))
    ok = bool(diff <= AP_TOL and np.array_equal(ref, ref_mt))
    res = {"sentences": n, "units": n_units, "positives": int(labels.sum()), "cpu_s": t_cpu, "cpu_threads": threads,
           "cpu_s_threads": t_cpu_mt, "device_s": t_gpu, "device_s_with_copies": t_gpu_all,
           "ratio_cpu_over_device": t_cpu / t_gpu, "ratio_cpu_threads_over_device": t_cpu_mt / t_gpu,
           "max_abs_diff": diff, "tolerance": AP_TOL, "agree": ok, "mean_ap": float(ref.mean())}
    print(f"AP       {n_units} units x {n} sentences ({int(labels.sum())} positives): cpu {t_cpu:.3f} s (1 thread),"
          f" {t_cpu_mt:.3f} s ({threads} threads)  {dev.type} {t_gpu:.4f} s ({t_gpu_all:.4f} s with copies)"
          f"  ratio cpu/{dev.type} {t_cpu / t_gpu:.1f}x ({t_cpu_mt / t_gpu:.1f}x vs {threads} threads)")
    print(f"AP       agreement: max |{dev.type} - cpu| = {diff:.2e} <= {AP_TOL:g}: {'PASS' if ok else 'FAIL'}")
    return res


# --------------------------------------------------------------------------- 3. streaming exemplars


def part_exemplars(subject: SubjectModel, dev: torch.device, sizes: Sizes, budget: Budget, words: list[str],
                   seed: int, capture_rate: float | None) -> dict:
    texts = make_sentences(sizes.ex_sentences, words, np.random.default_rng(seed + 2))
    n, window = len(texts), sizes.ex_window
    layers = list(range(subject.n_layers))
    units = subject.n_layers * subject.config.intermediate_size
    k = n_exemplars(n, TOP_PERCENT)
    t_cap = 2 * n * 25 / capture_rate if capture_rate else 0.01 * n  # two captures of the sentences
    estimate = 5.0 + t_cap + 1e-7 * n * units
    if not budget.allow(f"exemplars ({units} units x {n} sentences)", estimate):
        return {"skipped": "budget"}
    kw = dict(site="mlp_post", pooling="max", layers=layers, batch_size=sizes.batch_size, max_length=sizes.max_length)
    warm = texts[:window]  # warm-up of both paths on one window (kernels, lazily built tables, first touches)
    with PeakMemory(dev):  # (tracemalloc's tables too)
        stream_exemplars(subject, warm, top_percent=TOP_PERCENT, window=window, progress=False, **kw)
        dense_topk(capture_responses(subject, warm, progress=False, **kw).matrix(layers), 1)

    with PeakMemory(dev) as m_stream:
        t_stream, streamed = timed(lambda: stream_exemplars(subject, texts, top_percent=TOP_PERCENT, window=window,
                                                            progress=False, **kw), dev)
    free(dev)

    def dense():
        t0 = time.perf_counter()
        full = None
        for start in range(0, n, window):  # the same windows as the streaming pass: the same numbers
            resp = capture_responses(subject, texts[start:start + window], progress=False, **kw)
            chunk = resp.matrix(layers)
            del resp
            if full is None:
                full = np.empty((n, chunk.shape[1]), np.float16)
            full[start:start + chunk.shape[0]] = chunk
            del chunk
        t1 = time.perf_counter()
        top = dense_topk(full, k)
        return full, top, t1 - t0, time.perf_counter() - t1

    with PeakMemory(dev) as m_dense:
        t_dense, (full, (d_rows, d_vals), t_dense_cap, t_dense_sel) = timed(dense, dev)
    same = bool(np.array_equal(streamed.rows, d_rows) and np.array_equal(streamed.values, d_vals))
    res = {"sentences": n, "units": units, "layers": len(layers), "units_per_layer": subject.config.intermediate_size,
           "k": k, "window": window, "streaming_s": t_stream, "dense_s": t_dense, "dense_capture_s": t_dense_cap,
           "dense_select_s": t_dense_sel, "streaming_select_s_approx": max(0.0, t_stream - t_dense_cap),
           "ratio_time_streaming_over_dense": t_stream / t_dense, "identical": same,
           "streaming_memory": m_stream.as_dict(), "dense_memory": m_dense.as_dict(),
           "ratio_memory_tracemalloc": ratio(m_stream.traced, m_dense.traced),
           "ratio_memory_rss": ratio(m_stream.rss, m_dense.rss),
           "ratio_memory_cuda": ratio(m_stream.cuda, m_dense.cuda),
           "dense_matrix_bytes": int(full.nbytes)}
    if not same:  # capture noise or the selection? select on the dense matrix's own chunks
        rows, vals = top_exemplars(row_chunks(full, window), n, TOP_PERCENT)
        res["selection_identical_on_dense_matrix"] = bool(np.array_equal(rows, d_rows) and np.array_equal(vals, d_vals))
        res["units_differing"] = int((streamed.rows != d_rows).any(axis=1).sum())
    del full
    print(f"exemplars {units} units ({len(layers)} x {subject.config.intermediate_size}) x {n} sentences, top"
          f" {TOP_PERCENT:g}% = {k}, windows of {window}: streaming {t_stream:.2f} s  dense {t_dense:.2f} s"
          f" (capture {t_dense_cap:.2f} s + argsort {t_dense_sel:.2f} s)")
    print(f"exemplars ratio time streaming/dense {res['ratio_time_streaming_over_dense']:.3f}x;"
          f" peak memory streaming/dense {fmt_ratio(res['ratio_memory_tracemalloc'])} (tracemalloc"
          f" {mib(m_stream.traced)} vs {mib(m_dense.traced)}), {fmt_ratio(res['ratio_memory_rss'])} (RSS"
          f" {mib(m_stream.rss)} vs {mib(m_dense.rss)}), {fmt_ratio(res['ratio_memory_cuda'])} (CUDA"
          f" {mib(m_stream.cuda)} vs {mib(m_dense.cuda)})")
    extra = "" if same else (f" ({res['units_differing']} units differ; selection alone on the dense matrix identical:"
                             f" {res['selection_identical_on_dense_matrix']})")
    print(f"exemplars identical exemplar sets (rows and values, in order): {'PASS' if same else 'FAIL'}{extra}")
    return res


# --------------------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N; cpu only with --tiny")
    p.add_argument("--tiny", action="store_true", help="shrink every shape (2 layers, hidden 32, few sentences/units)")
    p.add_argument("--out", type=Path, default=None, help="folder for gpu_check.json (every number)")
    p.add_argument("--budget", type=float, default=420.0, help="wall-clock budget in seconds (default 420)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per capture measurement (default 3, tiny 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="capture,ap,exemplars",
                   help="comma-separated subset of capture,ap,exemplars (matmul always runs)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"capture models (default {','.join(DEFAULT_MODELS)}), subset of {','.join(MODELS)}")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget)
    try:
        dev = torch.device(args.device)
    except (RuntimeError, TypeError) as e:
        print(f"bad --device {args.device!r}: {e}", file=sys.stderr)
        return 2
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here (use --tiny --device cpu for a dry run)",
              file=sys.stderr)
        return 2
    if dev.type != "cuda" and not args.tiny:
        print("--device cpu needs --tiny (the full shapes are sized for an H100/H200)", file=sys.stderr)
        return 2
    parts = {s.strip() for s in args.parts.split(",") if s.strip()}
    models = [s.strip() for s in args.models.split(",") if s.strip()]
    bad = (parts - {"capture", "ap", "exemplars"}) | (set(models) - set(MODELS))
    if bad:
        print(f"unknown parts/models: {sorted(bad)}", file=sys.stderr)
        return 2
    sizes = TINY if args.tiny else FULL
    warnings.filterwarnings("ignore", message=".*float16 range.*")
    import transformers

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    meta = {"device": str(dev), "device_name": name, "tiny": args.tiny, "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "budget_s": args.budget, "seed": args.seed, "sizes": vars(sizes),
            "argv": list(sys.argv[1:] if argv is None else argv)}
    print(f"gpu check on {name} ({dev}); torch {torch.__version__}, transformers {transformers.__version__};"
          f" {'TINY shapes' if args.tiny else 'full shapes'}; budget {args.budget:.0f} s")
    result: dict = {"meta": meta, "matmul": {}, "capture": {}, "ap": None, "exemplars": None}
    checks: dict[str, bool] = {}

    result["matmul"] = rates = part_matmul(dev, sizes, budget)
    if "ap" in parts:
        result["ap"] = part_ap(dev, sizes, args, budget)
        if "agree" in result["ap"]:
            checks["ap_agree"] = result["ap"]["agree"]
    words = make_words(sizes.vocab_words, np.random.default_rng(args.seed))
    texts = make_sentences(sizes.capture_sentences, words, np.random.default_rng(args.seed + 1))
    ex_subject = None
    if "capture" in parts:
        for name in models:
            res, subject = part_capture(name, dev, sizes, args, budget, texts, words, rates)
            result["capture"][name] = res
            if name == EXEMPLAR_MODEL and "exemplars" in parts:
                ex_subject = subject
            del subject
            free(dev)
    if "exemplars" in parts:
        if ex_subject is None and budget.allow(f"exemplars: build {EXEMPLAR_MODEL}", 30.0 if not args.tiny else 1.0):
            ex_subject = build_subject(EXEMPLAR_MODEL, make_tokenizer("gpt_neox", words), dev, args.tiny, args.seed)
            ex_subject.model.to(torch.bfloat16)
        if ex_subject is not None:
            rate = (result["capture"].get(EXEMPLAR_MODEL, {}).get("bf16") or {}).get("capture_tokens_per_s")
            result["exemplars"] = part_exemplars(ex_subject, dev, sizes, budget, words, args.seed, rate)
            if "identical" in result["exemplars"]:
                checks["exemplars_identical"] = result["exemplars"]["identical"]
        del ex_subject
        free(dev)

    result["skipped"] = budget.skipped
    result["checks"] = checks
    result["ok"] = all(checks.values())
    result["elapsed_s"] = budget.elapsed()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "gpu_check.json"
        path.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"wrote {path}")
    summary = ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in checks.items()) or "none ran"
    print(f"checks: {summary};"
          f" {len(budget.skipped)} step(s) skipped for the budget; {budget.elapsed():.1f} s in all")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
