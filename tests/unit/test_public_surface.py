"""The public surface of ``import neuroscribe``, pinned: what a notebook user relies on."""

import subprocess
import sys

import neuroscribe

EXPECTED = {
    "__version__", "SCHEMA_VERSION",
    "ExpertsJob", "DescribeJob", "RankJob", "ConceptSpec", "SentenceRecord", "SubjectModelSpec", "GeneratorSpec",
    "SamplingSpec", "Pooling", "StabilitySpec", "AlignmentSpec", "SweepTarget", "CausalSpec", "DatasetSpec",
    "VocabularySpec", "AttributeDataSpec", "ProbingSpec", "InterventionSpec", "parse_job",
    "ExpertsResult", "DescribeResult", "RankResult", "ConceptExperts", "ExpertUnit", "Provenance", "JobStatus",
    "parse_result",
    "NeuroscribeError", "InvalidInput", "ModelNotFound", "SiteNotFound", "GenerationError",
    "Settings", "Client", "run",
}


def test_all_is_pinned_and_every_name_resolves():
    assert set(neuroscribe.__all__) == EXPECTED
    assert len(neuroscribe.__all__) == len(EXPECTED)
    for name in neuroscribe.__all__:
        assert getattr(neuroscribe, name) is not None, name


def test_every_job_and_result_of_the_contract_is_exported():
    import neuroscribe.jobs as jobs

    for name in jobs.__all__:
        if name.endswith(("Job", "Result")) and not name.startswith("Any"):
            assert name in neuroscribe.__all__, name
    from neuroscribe.service import registry

    for kind in registry.kinds().values():
        assert getattr(neuroscribe, kind.job.__name__) is kind.job
        assert getattr(neuroscribe, kind.result.__name__) is kind.result


def test_client_is_the_service_client():
    from neuroscribe.service.client import Client

    assert neuroscribe.Client is Client


def test_import_is_light():
    code = ("import sys, neuroscribe; neuroscribe.ExpertsJob; "
            "print(sorted(m for m in ('torch', 'transformers', 'httpx', 'fastapi', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_run_refuses_a_job_of_no_registered_kind(tmp_path):
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        neuroscribe.run({"kind": "nonsense"}, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()
