"""`bench/gpu/check.py` dry-runs on the CPU (`--tiny --device cpu`), so the GPU check cannot rot
while no device is lent: it exits 0, prints its ratio lines, its AP agreement passes, and it writes
the JSON with every number. Plus the torch AP kernel against the CPU one on every tie regime."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroscribe.workers.experts.ap import average_precision

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu" / "check.py"
MODELS = ("bert-base", "pythia-160m", "pythia-1.4b")


def _load_check():
    spec = importlib.util.spec_from_file_location("neuroscribe_gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, out / "gpu_check.json"


def test_dry_run_exits_0_and_prints_the_ratio_lines(dry_run):
    proc, _ = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("matmul   bf16") and "TFLOP/s" in line for line in lines)
    for name in MODELS:
        for dtype in ("fp32", "bf16"):
            hits = [line for line in lines if re.match(rf"capture  {re.escape(name)} +{dtype}  bare ", line)]
            assert len(hits) == 1 and "ratio capture/bare" in hits[0] and "MFU" in hits[0], proc.stdout
    assert any("ratio cpu/cpu" in line for line in lines if line.startswith("AP ")), proc.stdout
    agreement = [line for line in lines if line.startswith("AP       agreement")]
    assert len(agreement) == 1 and agreement[0].endswith("PASS"), proc.stdout
    assert any(line.startswith("exemplars ratio time streaming/dense") and "peak memory streaming/dense" in line
               for line in lines), proc.stdout
    assert any(line.startswith("exemplars identical") and line.endswith("PASS") for line in lines), proc.stdout
    assert "SKIP" not in proc.stdout
    assert "checks: ap_agree PASS, exemplars_identical PASS" in proc.stdout


def test_dry_run_writes_every_number(dry_run):
    proc, path = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(path.read_text())
    assert {"meta", "matmul", "capture", "ap", "exemplars", "skipped", "checks", "ok", "elapsed_s"} <= set(data)
    assert data["ok"] is True and data["skipped"] == []
    assert data["checks"] == {"ap_agree": True, "exemplars_identical": True}
    assert data["meta"]["tiny"] is True and data["meta"]["device"] == "cpu"
    assert data["matmul"]["bf16_tflops"] > 0 and data["matmul"]["fp32_tflops"] > 0
    assert set(data["capture"]) == set(MODELS)
    for name, res in data["capture"].items():
        assert res["layers"] == 2 and res["hidden"] == 32 and res["tokens"] > 0
        assert 0 < res["params_non_embedding"] < res["params"]
        assert res["flops_per_token"] == 2 * res["params_non_embedding"]
        for dtype in ("fp32", "bf16"):
            r = res[dtype]
            for key in ("bare_s", "capture_s", "bare_tokens_per_s", "capture_tokens_per_s", "ratio_capture_over_bare",
                        "mfu_bare_vs_bf16_matmul", "mfu_capture_vs_bf16_matmul"):
                assert r[key] > 0, (name, dtype, key)
            assert r["ratio_capture_over_bare"] == pytest.approx(r["capture_tokens_per_s"] / r["bare_tokens_per_s"])
    ap = data["ap"]
    assert ap["agree"] is True and ap["max_abs_diff"] <= 1e-9 and ap["tolerance"] == 1e-9
    for key in ("cpu_s", "cpu_s_threads", "device_s", "device_s_with_copies", "ratio_cpu_over_device"):
        assert ap[key] > 0, key
    ex = data["exemplars"]
    assert ex["identical"] is True and ex["units"] == 2 * 64 and ex["k"] >= 1
    for key in ("streaming_s", "dense_s", "ratio_time_streaming_over_dense", "ratio_memory_tracemalloc"):
        assert ex[key] > 0, key
    assert ex["streaming_memory"]["tracemalloc_peak_bytes"] > 0 and ex["dense_memory"]["tracemalloc_peak_bytes"] > 0


def test_torch_ap_equals_the_cpu_kernel_on_every_tie_regime():
    check = _load_check()
    rng = np.random.default_rng(3)
    few = np.array([-2.0, -1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0])
    x = rng.standard_normal((300, 40))
    x[:, :10] = few[rng.integers(0, few.size, (300, 10))]  # a handful of values, -0.0 among them
    x[:, 10] = 0.0  # dead unit
    x[:, 11] = -0.0
    x[:, 12:20] = np.maximum(x[:, 12:20], 0).round(1)  # ReLU-like, half tied at 0
    labels = rng.random(300) < 0.2
    labels[:2] = True, False
    ref = average_precision(x, labels)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        t = torch.from_numpy(x).to(dtype)
        got = check.ap_torch(t, torch.from_numpy(labels), chunk_elems=300 * 7).numpy()  # several chunks
        np.testing.assert_allclose(got, average_precision(t, labels), rtol=0, atol=1e-12)
        if dtype == torch.float64:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    data, y = check.ap_data(200, 90, seed=1)
    np.testing.assert_allclose(check.ap_torch(torch.from_numpy(data), torch.from_numpy(y)).numpy(),
                               average_precision(data, y), rtol=0, atol=1e-12)


def test_refuses_full_shapes_on_cpu_and_unknown_parts():
    check = _load_check()
    assert check.main(["--device", "cpu"]) == 2
    assert check.main(["--tiny", "--device", "cpu", "--parts", "nope"]) == 2


def test_budget_guard_skips_with_a_note(tmp_path, capsys):
    check = _load_check()
    assert check.main(["--tiny", "--device", "cpu", "--budget", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SKIP matmul bf16" in out and "SKIP ap" in out and "SKIP capture bert-base: build" in out
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["checks"] == {} and data["ap"] == {"skipped": "budget"}
    assert {s["step"] for s in data["skipped"]} >= {"matmul bf16", "ap", "capture pythia-1.4b: build"}
