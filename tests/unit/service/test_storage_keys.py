"""The artefact store's keys, its setting (refused at startup unless s3:// or file:///), the choice
of store, and the default store (the artefacts folder itself), where publication copies nothing."""

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.service.storage import LocalStore, ObjectStore, check_key, open_store, sync
from neuroscribe.settings import Settings


@pytest.mark.parametrize("key", ["a", "jobs/0a/stage/descriptors.json", "x-y_z.1/ü", "a/b..c", "a.b/c"])
def test_relative_names_are_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key, why", [("", "not a key"), ("/abs", "starts with '/'"), ("a/../b", "'..'"),
                                      ("..", "'..'"), ("./a", "'.'"), ("a//b", "empty segment"),
                                      ("a/", "empty segment"), ("a\\b", "backslash"), ("a/.b", "'.b'"),
                                      ("a\tb", "control character"), (None, "not a key"), (b"a", "not a key")])
def test_escapes_and_malformed_keys_are_invalid_input_naming_the_key(key, why):
    with pytest.raises(InvalidInput) as e:
        check_key(key, field="artefact")
    assert e.value.field == "artefact" and why in e.value.message and repr(key) in e.value.message


def test_the_setting_and_its_endpoint_come_from_the_environment():
    s = Settings.from_env({"NEUROSCRIBE_ARTEFACTS_URL": "s3://bucket/neuroscribe",
                           "NEUROSCRIBE_S3_ENDPOINT_URL": "http://minio:9000"})
    assert (s.artefacts_url, s.s3_endpoint_url) == ("s3://bucket/neuroscribe", "http://minio:9000")
    assert Settings.from_json(s.to_json()) == s  # as the executor process gets it
    assert Settings.from_env({}).artefacts_url is None


@pytest.mark.parametrize("var, value", [("NEUROSCRIBE_ARTEFACTS_URL", "ftp://host/x"),
                                        ("NEUROSCRIBE_ARTEFACTS_URL", "gs://bucket"),
                                        ("NEUROSCRIBE_ARTEFACTS_URL", "s3://"),
                                        ("NEUROSCRIBE_ARTEFACTS_URL", "file://relative/path"),
                                        ("NEUROSCRIBE_ARTEFACTS_URL", "/just/a/path"),
                                        ("NEUROSCRIBE_S3_ENDPOINT_URL", "minio:9000")])
def test_another_scheme_is_refused_at_startup_naming_the_setting_and_the_value(var, value):
    with pytest.raises(ValueError) as e:
        Settings.from_env({var: value})
    assert var in str(e.value) and repr(value) in str(e.value)


def test_open_store_picks_the_store_from_the_url(tmp_path):
    default = open_store(Settings.build(artefacts=tmp_path / "art"))
    assert isinstance(default, LocalStore) and default.folder == tmp_path / "art"
    shared = open_store(Settings.build(artefacts=tmp_path / "art", artefacts_url=f"file://{tmp_path}/nfs"))
    assert isinstance(shared, LocalStore) and shared.folder == tmp_path / "nfs"
    s3 = open_store(Settings.build(artefacts_url="s3://my-bucket/a/b", s3_endpoint_url="http://127.0.0.1:1"))
    assert isinstance(s3, ObjectStore) and (s3.bucket, s3.prefix, s3.url) == ("my-bucket", "a/b", "s3://my-bucket/a/b")
    assert s3.folder is None  # nothing is opened or contacted until a key is read or written
    with pytest.raises(InvalidInput) as e:  # Settings made without build() are checked again here
        open_store(Settings(artefacts_url="http://example.com/x"))
    assert e.value.field == "artefacts_url" and "'http://example.com/x'" in e.value.message
    with pytest.raises(InvalidInput) as e:
        open_store(Settings(artefacts_url="s3://bucket/../up"))
    assert e.value.field == "artefacts_url"


def test_the_default_store_is_the_artefacts_folder_and_publication_copies_nothing(tmp_path):
    root = tmp_path / "artefacts"
    job = "0f" * 16
    (root / job / "stage").mkdir(parents=True)
    (root / job / "stage" / "descriptors.json").write_text("{}")
    store = open_store(Settings.build(artefacts=root))
    assert sync.shares_folder(store, root / job)
    assert sync.push(store, job, root / job, "generate") == [] and sync.pull(store, job, root / job) == {}
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [job, f"{job}/stage",
                                                                               f"{job}/stage/descriptors.json"]


def test_commit_names_of_stages_and_shards():
    assert sync.commit_name("generate") == "generate"
    assert sync.commit_name("activate", {"id": 3}) == "activate.3"
    assert sync.commit_name("activate", {"id": "reduce"}) == "activate.reduce"
    with pytest.raises(InvalidInput) as e:
        sync.commit_name("activate", {"id": "../x"})
    assert e.value.field == "stage" and "'activate.../x'" in e.value.message


@pytest.mark.parametrize("command", [["worker", "generate"], ["serve"], ["gc"]])
def test_a_process_started_with_another_scheme_stops_with_one_line(command, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from neuroscribe.service.cli import cli

    monkeypatch.setenv("NEUROSCRIBE_ARTEFACTS", str(tmp_path))
    monkeypatch.setenv("NEUROSCRIBE_ARTEFACTS_URL", "ftp://files.example/x")
    got = CliRunner().invoke(cli, command)
    assert got.exit_code == 2, got.output
    assert "NEUROSCRIBE_ARTEFACTS_URL" in got.output and "'ftp://files.example/x'" in got.output
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
