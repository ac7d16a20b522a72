"""A describe job's dataset from a file or a packaged dataset's name: the CLI builds the job's
``DatasetSpec`` here (the sentences travel inside the job)."""

from __future__ import annotations

from pathlib import Path

from neuroscribe.errors import InvalidInput

__all__ = ["PACKAGED_DATASETS", "load_dataset_spec"]


# packaged datasets: name -> (file in neuroscribe/data, default label names)
PACKAGED_DATASETS = {"amazon": ("amazon_cells_labelled.txt", {"1": "positive", "0": "negative"})}


def load_dataset_spec(path: Path, *, text_col: str | None = None, label_col: str | None = None,
                      label_names: dict[str, str] | None = None):
    """A ``DatasetSpec`` from a file, or from a packaged dataset by name (``amazon``: the Amazon
    sentiment sentences, labels 1/0 named positive/negative unless ``label_names`` says otherwise).
    ``text_col`` / ``label_col``: None when not given (a packaged dataset or a .txt file takes
    neither: its columns are fixed). Errors name the field: dataset, text_col, label_col, label,
    dataset.labels, dataset.label_names."""
    from importlib.resources import files

    from pydantic import ValidationError

    from neuroscribe.jobs.describe import DatasetSpec
    from neuroscribe.workers.datasets import check_dataset_file, load_dataset

    label_names = dict(label_names or {})
    if str(path) in PACKAGED_DATASETS and not Path(path).exists():
        for field, value, fixed in (("text_col", text_col, "sentences"), ("label_col", label_col, "labels")):
            if value is not None:
                raise InvalidInput(field, f"{value!r} is not used by the packaged dataset {str(path)!r} "
                                          f"(its {fixed} are fixed); remove it")
        name, defaults = PACKAGED_DATASETS[str(path)]
        path = Path(str(files("neuroscribe") / "data" / name))
        label_names = label_names or dict(defaults)
    else:
        check_dataset_file(path, packaged=tuple(PACKAGED_DATASETS))
    ds = load_dataset(path, text_col=text_col, label_col=label_col)
    if label_names and ds.labels is None:
        raise InvalidInput("dataset.label_names", f"{Path(path).name} has no labels to name (give --label-col)")
    try:
        return DatasetSpec(name=Path(path).name, texts=tuple(ds.texts), labels=ds.labels, label_names=label_names)
    except ValidationError as e:
        from neuroscribe.service.cli_common import validation_field

        field, msg = validation_field(e)
        raise InvalidInput("dataset" if field == "job" else f"dataset.{field}", msg) from None
