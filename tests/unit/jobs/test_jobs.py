"""The job contract: JSON round trips, validation errors that name the field, schema version."""

import json

import pytest
from pydantic import ValidationError

from neuroscribe.jobs.describe import DatasetSpec
from neuroscribe.jobs.rank import AttributeDataSpec
from neuroscribe.jobs import (
    SCHEMA_VERSION,
    ConceptExperts,
    ConceptSpec,
    DescribeJob,
    ExpertsJob,
    ExpertsResult,
    ExpertUnit,
    GeneratorSpec,
    JobStatus,
    Provenance,
    RankJob,
    SentenceRecord,
    SubjectModelSpec,
    parse_job,
    parse_result,
)


def _experts_job(**kw):
    return ExpertsJob(concepts=[ConceptSpec.from_string("cat:animal"), ConceptSpec(name="bus")], **kw)


@pytest.mark.parametrize(
    "job",
    [
        _experts_job(),
        _experts_job(model=SubjectModelSpec(name="EleutherAI/pythia-70m", revision="step1000", layers=(3, 1))),
        _experts_job(generator=GeneratorSpec.from_string("openai:m@http://127.0.0.1:8000/v1")),
        ExpertsJob(
            concepts=[ConceptSpec(name="cat")],
            sentences=[
                SentenceRecord(text="A cat sat.", concept="cat", label=1),
                SentenceRecord(text="Rain fell.", concept="cat", label=0),
            ],
        ),
        DescribeJob(dataset=DatasetSpec(name="d.txt", texts=("Good phone.", "Bad case."), labels=("1", "0"),
                                        label_names={"1": "positive"})),
        RankJob(dataset=AttributeDataSpec(name="r", texts=tuple(f"t {i}" for i in range(10)), labels=("a", "b") * 5,
                                          word_index=(1,) * 10, continuations={"a": " yes", "b": " no"}),
                methods=("probeless", "random"), ks=(50, 10)),
    ],
)
def test_job_json_round_trip(job):
    text = job.model_dump_json()
    back = parse_job(text)
    assert type(back) is type(job) and back == job
    assert parse_job(json.loads(text)) == job
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION


def test_result_json_round_trip():
    prov = Provenance(
        neuroscribe_version="0.1.0", model="m", weight_sha256="ab", site="mlp_post", pooling="max",
        data_sha256="cd", created_at="2026-01-01T00:00:00+00:00",
    )
    ce = ConceptExperts(
        concept="cat", n_pos=3, n_neg=4, experts=(ExpertUnit(layer=1, unit=5, ap=0.95),),
        counts_per_layer={0: 0, 1: 1}, top=(ExpertUnit(layer=1, unit=5, ap=0.95),),
    )
    res = ExpertsResult(tau=0.9, layers=(0, 1), units_per_layer=8, concepts=(ce,), provenance=prov)
    back = parse_result(res.model_dump_json())
    assert back == res and back.concepts[0].counts_per_layer == {0: 0, 1: 1}


def _field_of(excinfo):
    return ".".join(str(x) for x in excinfo.value.errors()[0]["loc"])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"n_pos": 0}, "n_pos"),
        ({"model": {"name": ""}}, "model.name"),
        ({"model": {"pooling": "median"}}, "model.pooling"),
    ],
)
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ValidationError) as e:
        _experts_job(**kwargs)
    assert _field_of(e) == field


def test_empty_concept_rejected():
    with pytest.raises(ValidationError, match="concept must not be empty"):
        ConceptSpec.from_string("   ")


def test_duplicate_concepts_rejected():
    with pytest.raises(ValidationError, match="unique"):
        ExpertsJob(concepts=[ConceptSpec(name="cat"), ConceptSpec(name="cat")])


def test_sentences_need_both_labels():
    with pytest.raises(ValidationError, match="no negatives"):
        ExpertsJob(
            concepts=[ConceptSpec(name="cat")],
            sentences=[SentenceRecord(text="A cat sat.", concept="cat", label=1)],
        )


def test_other_schema_version_rejected():
    data = json.loads(_experts_job().model_dump_json())
    data["schema_version"] = 2
    with pytest.raises(ValidationError) as e:
        parse_job(data)
    assert "schema_version" in _field_of(e)


def test_unknown_kind_and_extra_fields_rejected():
    with pytest.raises(ValidationError):
        parse_job({"kind": "train", "concepts": [{"name": "cat"}]})
    with pytest.raises(ValidationError) as e:
        parse_job({"kind": "experts", "concepts": [{"name": "cat"}], "taus": 0.5})
    assert _field_of(e).endswith("taus")


def test_generator_spec_strings():
    assert GeneratorSpec.from_string("fake").backend == "fake"
    g = GeneratorSpec.from_string("vllm:meta-llama/Llama-3.1-8B-Instruct")
    assert (g.backend, g.model) == ("vllm", "meta-llama/Llama-3.1-8B-Instruct")
    g = GeneratorSpec.from_string("openai:qwen@http://127.0.0.1:8000/v1")
    assert (g.model, g.base_url) == ("qwen", "http://127.0.0.1:8000/v1")
    with pytest.raises(ValidationError, match="base_url"):
        GeneratorSpec.from_string("openai:qwen")
    with pytest.raises(ValueError):
        GeneratorSpec.from_string("not a spec!")


def test_job_status():
    assert JobStatus("queued") is JobStatus.queued
    assert {s.value for s in JobStatus if s.is_final} == {"succeeded", "failed", "cancelled"}


def test_repeated_concept_error_names_the_field():
    with pytest.raises(ValidationError) as e:
        ExpertsJob(concepts=[ConceptSpec(name="cat"), ConceptSpec(name="cat")])
    assert _field_of(e) == "concepts" and "cat" in str(e.value)


def test_empty_layer_list_rejected():
    with pytest.raises(ValidationError) as e:
        SubjectModelSpec(layers=())
    assert _field_of(e) == "layers"
