"""Artefacts behind one interface (issue 17, part 3): the store contract, run against the local
folder and against an S3-compatible server (moto's standalone server, started here), and stage
publication through the store (write-then-commit-key) on both."""

import hashlib
import json
import os
import threading

import pytest

from neuroscribe.errors import InvalidInput
from neuroscribe.service.storage import LocalStore, ObjectStore, sync
from s3_server import make_bucket, s3_env, s3_server

JOB = "ab" * 16


@pytest.fixture(scope="module")
def endpoint():
    with s3_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3_env(monkeypatch)
    ep = request.getfixturevalue("endpoint")
    return ObjectStore(f"s3://{make_bucket(ep)}/some/prefix", endpoint_url=ep)


# ---------------------------------------------------------------- the contract


def test_write_read_exists_delete_list(store):
    assert store.list() == [] and not store.exists("jobs/a/x.json")
    store.write_bytes("jobs/a/x.json", b"one")
    store.write_bytes("jobs/a/deep/y.bin", bytes(range(256)))
    store.write_bytes("jobs/ab/z", b"")
    assert store.read_bytes("jobs/a/x.json") == b"one" and store.read_bytes("jobs/ab/z") == b""
    assert store.read_bytes("jobs/a/deep/y.bin") == bytes(range(256))
    store.write_bytes("jobs/a/x.json", b"two")  # replaced
    assert store.read_bytes("jobs/a/x.json") == b"two"
    assert store.exists("jobs/a/x.json") and not store.exists("jobs/a")  # a folder-like prefix is no object
    assert store.list() == ["jobs/a/deep/y.bin", "jobs/a/x.json", "jobs/ab/z"]
    assert store.list("jobs/a") == store.list("jobs/a/") == ["jobs/a/deep/y.bin", "jobs/a/x.json"]  # not jobs/ab
    assert store.list("jobs/a/x.json") == [] and store.list("nothing") == []
    with pytest.raises(FileNotFoundError):
        store.read_bytes("jobs/a/missing")
    store.delete("jobs/a/x.json")
    store.delete("jobs/a/x.json")  # absent: no error
    assert not store.exists("jobs/a/x.json") and store.list("jobs/a") == ["jobs/a/deep/y.bin"]
    with pytest.raises(FileNotFoundError):
        store.read_bytes("jobs/a/x.json")
    assert store.delete_prefix("jobs") == 2 and store.list() == []


def test_files_in_and_out(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    store.put_file("jobs/a/big.bin", src)
    dest = tmp_path / "out" / "big.bin"
    dest.parent.mkdir()
    store.get_file("jobs/a/big.bin", dest)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        store.get_file("jobs/a/none", tmp_path / "out" / "none")
    assert sorted(os.listdir(tmp_path / "out")) == ["big.bin"]  # no file, no temporary left behind


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../../b", "..", "a/./b", "a//b", "a/b/", "a\\b", "C:\\x",
                                 ".hidden", "a/.tmp", "a\x00b", "a\nb", "x" * 1025])
def test_keys_that_escape_or_are_malformed_are_refused_naming_the_key(store, key, tmp_path):
    for call in (lambda: store.read_bytes(key), lambda: store.write_bytes(key, b"x"), lambda: store.exists(key),
                 lambda: store.delete(key), lambda: store.put_file(key, tmp_path)):
        with pytest.raises(InvalidInput) as e:
            call()
        assert e.value.field == "key" and repr(key)[:40] in str(e.value)
    assert store.list() == []  # nothing was written anywhere
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []  # the local store's root holds tmp_path/store


def test_a_half_written_object_is_never_seen(store):
    """A writer replaces one object over and over with two large values while a reader reads and
    lists it: every read is one whole value, and the listing never shows anything but the key."""
    a, b = b"a" * (4 << 20), b"b" * (4 << 20)
    stop = threading.Event()
    errors = []

    def write():
        try:
            for i in range(12):
                store.write_bytes("jobs/x/value.bin", a if i % 2 else b)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen = set()
    while not stop.is_set() or not seen:
        try:
            got = store.read_bytes("jobs/x/value.bin")
        except FileNotFoundError:
            continue
        assert got in (a, b), f"a read saw {len(got)} bytes, {set(got[:1] + got[-1:])}"
        seen.add(got[:1])
        assert store.list("jobs") == ["jobs/x/value.bin"]
    writer.join()
    assert not errors and seen


def test_a_link_out_of_the_local_store_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "store"
    root.mkdir()
    (root / "jobs").symlink_to(outside)
    (root / "f").symlink_to(outside / "secret")
    store = LocalStore(root)
    assert store.list() == [] and not store.exists("jobs/secret") and not store.exists("f")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("jobs/secret")
    with pytest.raises(FileNotFoundError):
        store.write_bytes("jobs/new", b"x")
    assert sorted(os.listdir(outside)) == ["secret"]


# ---------------------------------------------------------------- publication (write-then-commit-key)


def _write(folder, files: dict):
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_a_stage_publishes_its_files_and_a_reader_on_another_root_pulls_them(store, tmp_path):
    a, b = tmp_path / "rootA" / JOB, tmp_path / "rootB" / JOB
    _write(a, {"stage/one.json": b"{}", "stage/blob/x.npy": os.urandom(5000)})
    _write(a, {"stage/.tmp-half": b"half", "stage/two.json.part": b"half"})  # temporary: never published
    assert sorted(sync.push(store, JOB, a, "generate")) == ["stage/blob/x.npy", "stage/one.json"]
    assert sync.pull(store, JOB, b).keys() == {"stage/blob/x.npy", "stage/one.json"}
    assert _tree(b) == {k: v for k, v in _tree(a).items() if not k.endswith(".part")}
    _write(b, {"stage/three.json": b"[3]"})  # the next stage, on root B
    assert sync.push(store, JOB, b, "cluster") == ["stage/three.json"]  # only what it wrote
    commit = json.loads(store.read_bytes(f"jobs/{JOB}/commits/cluster.json"))
    assert commit["files"] == [{"path": "stage/three.json", "size": 3,
                                "sha256": hashlib.sha256(b"[3]").hexdigest()}] and commit["seq"] == 1
    before = (a / "stage/blob/x.npy").stat().st_mtime_ns
    sync.pull(store, JOB, a)
    assert (a / "stage/three.json").read_bytes() == b"[3]"
    (a / sync.MARKER).unlink()  # forgotten what was synced: the files there are checked, not fetched again
    sync.pull(store, JOB, a)
    assert (a / "stage/blob/x.npy").stat().st_mtime_ns == before


def test_a_reader_pulls_only_what_a_commit_lists(store, tmp_path):
    a, b = tmp_path / "A" / JOB, tmp_path / "B" / JOB
    _write(a, {"stage/one.json": b"1"})
    sync.push(store, JOB, a, "generate")
    # a crash between upload and commit: the blob is there, no commit lists it
    store.write_bytes(f"jobs/{JOB}/blobs/{hashlib.sha256(b'2').hexdigest()}", b"2")
    assert sync.pull(store, JOB, b) == {"stage/one.json": hashlib.sha256(b"1").hexdigest()}
    assert _tree(b) == {"stage/one.json": b"1"}
    assert sync.pull(store, "cd" * 16, tmp_path / "C" / ("cd" * 16)) == {}  # another job: nothing


def test_a_stage_run_again_publishes_again_and_the_later_commit_wins(store, tmp_path):
    a, b, c = (tmp_path / r / JOB for r in "ABC")
    _write(a, {"stage/x.json": b"first"})
    sync.push(store, JOB, a, "generate")
    _write(b, {"stage/x.json": b"second"})  # the retry, on another root, writes other bytes
    assert sync.push(store, JOB, b, "generate") == ["stage/x.json"]
    assert [k.rsplit("/", 1)[1] for k in store.list(f"jobs/{JOB}/commits")] == ["generate.json"]
    sync.pull(store, JOB, c)
    assert (c / "stage/x.json").read_bytes() == b"second"
    _write(c, {"stage/x.json": b"third"})  # a later stage rewrites the file
    sync.push(store, JOB, c, "cluster")
    sync.pull(store, JOB, a)
    assert (a / "stage/x.json").read_bytes() == b"third"


def test_a_commit_that_names_a_path_outside_the_folder_or_a_bad_blob_is_refused(store, tmp_path):
    a, b = tmp_path / "A" / JOB, tmp_path / "B" / JOB
    _write(a, {"x.json": b"good"})
    sync.push(store, JOB, a, "generate")
    sha = hashlib.sha256(b"good").hexdigest()
    store.write_bytes(f"jobs/{JOB}/blobs/{sha}", b"evil")  # tampered with: the sha256 no longer matches
    with pytest.raises(sync.CommitError, match="sha256"):
        sync.pull(store, JOB, b)
    assert not (b / "x.json").exists()
    doc = {"format": "neuroscribe-commit-1", "seq": 0, "files": [{"path": "../../escape", "size": 4, "sha256": sha}]}
    store.write_bytes(f"jobs/{JOB}/commits/generate.json", json.dumps(doc).encode())
    with pytest.raises(sync.CommitError, match="escape"):
        sync.pull(store, JOB, b)
    assert sorted(p.name for p in tmp_path.rglob("*escape*")) == []


def test_the_gc_forgets_the_objects_of_the_jobs_it_removes(store, tmp_path):
    import time

    from neuroscribe.service.queue import InMemoryQueue, Retention
    from neuroscribe.service.retention import collect

    q = InMemoryQueue(retention=Retention(job_ttl_s=60))
    old, kept = q.submit({"kind": "experts", "concepts": [{"name": "cat"}]}), q.submit(
        {"kind": "experts", "concepts": [{"name": "dog"}]})
    for job in (old, kept):
        _write(tmp_path / "w" / job.id, {"stage/x.json": job.id.encode()})
        sync.push(store, job.id, tmp_path / "w" / job.id, "generate")
    for stage in ("generate", "activate", "analyse"):
        d = q.claim(stage, "w", block_s=0.5)
        assert d.job_id == old.id and q.complete(d, **({"result": {}} if stage == "analyse" else {"handoff": {}}))
    assert collect(q, tmp_path / "api", now=time.time() + 61, store=store).jobs == [old.id]
    assert store.list(f"jobs/{old.id}") == [] and len(store.list(f"jobs/{kept.id}")) == 2  # a blob, a commit


def test_the_api_serves_a_file_store_and_answers_503_when_the_store_cannot_be_read(tmp_path):
    """``file:///PATH`` (a mount used as the store): the API pulls the job's files into its own folder;
    a commit it cannot use is a 503 with Retry-After, never a 500 or a half-served job."""
    from fastapi.testclient import TestClient

    from neuroscribe.service.api import create_app
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    q = InMemoryQueue()
    rec = q.submit({"kind": "experts", "concepts": [{"name": "cat"}]})
    settings = Settings.build(artefacts=tmp_path / "api", artefacts_url=f"file://{tmp_path}/mount")
    store = LocalStore(tmp_path / "mount")
    _write(tmp_path / "worker" / rec.id, {"result/experts.json": b"{}"})
    sync.push(store, rec.id, tmp_path / "worker" / rec.id, "analyse")
    with TestClient(create_app(q, artefacts_dir=tmp_path / "api", settings=settings)) as http:
        assert http.get(f"/v1/jobs/{rec.id}/artefacts").json() == ["result/experts.json"]
        assert http.get(f"/v1/jobs/{rec.id}/artefacts/result/experts.json").content == b"{}"
        store.write_bytes(f"jobs/{rec.id}/commits/generate.json", b"not json")
        r = http.get(f"/v1/jobs/{rec.id}/artefacts")
        assert r.status_code == 503 and r.headers["retry-after"] == "5" and "artefact store" in r.json()["detail"]


# ---------------------------------------------------------------- multi-root: workers on different machines

DESCRIBE_STAGES = ("generate", "cluster", "activate", "analyse", "explain")


@pytest.fixture(scope="module")
def describe_job(tmp_path_factory):
    from neuroscribe.service.describe.cli import build_describe_job
    from tiny_models import make_tiny_model

    d = tmp_path_factory.mktemp("multiroot")
    model = make_tiny_model("bert", d / "bert")
    data = d / "reviews.tsv"
    rows = [("the phone works great and the battery is good", 1), ("the screen broke after a week", 0),
            ("great sound quality for the price", 1), ("the case is poor and the battery is bad", 0)] * 5
    data.write_text("text\tlabel\n" + "".join(f"{t} number {i}\t{lab}\n" for i, (t, lab) in enumerate(rows)))
    job = build_describe_job(model=str(model), revision=None, dataset=data, text_col="text", label_col="label",
                             label_names=("1=positive", "0=negative"), label_word_match=True, layers=(),
                             site="mlp_post", pooling="cls", top_percent=20.0, threshold=50.0, fdr=None,
                             fdr_family="tested", min_cluster_size=2, min_samples=None, cluster_selection="leaf",
                             reduce_to=None, consistency=True, ks=(), generator="fake", gen_batch_size=8,
                             batch_size=8, max_length=32, device="cpu", seed=0, trust_remote_code=False, min_valid=2)
    return job.model_dump(mode="json"), str(model)


def _run_stages(q, plan, settings_of):
    """One in-process worker per (stage, root), in order, each serving one delivery."""
    from neuroscribe.service.worker import Worker

    for stage, root in plan:
        w = Worker(q, stage, settings=settings_of(root), log=lambda _m: None, ready_timeout_s=180)
        assert w.run(max_jobs=1, signals=False) == 0


def test_workers_on_different_roots_finish_a_job_through_the_object_store(describe_job, endpoint, tmp_path,
                                                                           monkeypatch):
    """generate, activate and explain on root A, cluster and analyse on root B, the API on root C, one
    s3:// URL: every stage finds the earlier stages' files, and the API serves the result (larger than
    the queue keeps: result.json, published by the last stage), the files, and forgets them on DELETE."""
    from fastapi.testclient import TestClient

    from neuroscribe.service.api import create_app
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    s3_env(monkeypatch)
    job, model = describe_job
    url = f"s3://{make_bucket(endpoint)}/neuroscribe"

    def settings_of(root):
        return Settings.build(artefacts=root, cache_dir=tmp_path / "cache", models=(model,), artefacts_url=url,
                              s3_endpoint_url=endpoint, result_inline_bytes=1000)

    a, b, c = tmp_path / "rootA", tmp_path / "rootB", tmp_path / "rootC"
    q = InMemoryQueue(lease_s=60.0, max_attempts=1)
    rec = q.submit(job)
    _run_stages(q, zip(DESCRIBE_STAGES, (a, b, a, b, a)), settings_of)
    done = q.get(rec.id)
    assert done.status.value == "succeeded", done.error
    assert q.result(rec.id) is None  # too large for the queue: result.json, in the store
    store = ObjectStore(url, endpoint_url=endpoint)
    assert [k.rsplit("/", 1)[1] for k in store.list(f"jobs/{rec.id}/commits")] == sorted(
        f"{s}.json" for s in DESCRIBE_STAGES)
    assert not (b / rec.id / "result").exists()  # root B never saw the last stage's files
    assert not (a / rec.id / "stage" / "vocabulary.json").is_symlink()

    app = create_app(q, artefacts_dir=c, settings=settings_of(c))
    with TestClient(app) as http:
        result = http.get(f"/v1/jobs/{rec.id}/result")
        assert result.status_code == 200
        assert result.json() == json.loads((a / rec.id / "result.json").read_text())
        assert result.json()["n_described"] > 0
        files = http.get(f"/v1/jobs/{rec.id}/artefacts").json()
        assert {"result/descriptions.json", "result/units.csv", "stage/descriptors.json",
                "stage/vocabulary.json", "result.json"} <= set(files)
        assert not any(f.rsplit("/", 1)[-1].startswith(".") for f in files)
        assert (c / rec.id / sync.MARKER).is_file()  # what was fetched is remembered, and not served
        assert http.get(f"/v1/jobs/{rec.id}/artefacts/{sync.MARKER}").status_code == 404
        page = http.get(f"/v1/jobs/{rec.id}/artefacts/result/units.csv")
        assert page.status_code == 200 and page.content == (a / rec.id / "result" / "units.csv").read_bytes()
        assert http.delete(f"/v1/jobs/{rec.id}").status_code == 204
    assert store.list(f"jobs/{rec.id}") == []


def test_without_the_object_store_the_same_roots_fail_as_before(describe_job, tmp_path):
    """The same set-up without NEUROSCRIBE_ARTEFACTS_URL: the cluster worker, on root B, does not
    find what generate wrote on root A, and the job fails (what the object store fixes)."""
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    job, model = describe_job
    q = InMemoryQueue(lease_s=60.0, max_attempts=1)
    rec = q.submit(job)
    _run_stages(q, zip(DESCRIBE_STAGES[:2], (tmp_path / "rootA", tmp_path / "rootB")),
                lambda root: Settings.build(artefacts=root, cache_dir=tmp_path / "cache", models=(model,)))
    done = q.get(rec.id)
    assert done.status.value != "succeeded" and "an earlier stage's file is missing" in done.error
    assert (tmp_path / "rootA" / rec.id / "stage" / "descriptors.json").is_file()


def test_files_a_later_stage_deletes_are_not_fetched_again_and_concurrent_shards_keep_theirs(store, tmp_path):
    a, b, c, d = (tmp_path / r / JOB for r in "ABCD")
    _write(a, {"stage/vocabulary.json": b"v"})
    sync.push(store, JOB, a, "cluster")
    sync.pull(store, JOB, b)
    sync.pull(store, JOB, c)
    _write(b, {"stage/shards/activate/0000/s.npz": b"shard 0"})
    sync.push(store, JOB, b, sync.commit_name("activate", {"id": "0000"}))
    _write(c, {"stage/shards/activate/0001/s.npz": b"shard 1"})  # pulled before shard 0 committed
    sync.push(store, JOB, c, sync.commit_name("activate", {"id": "0001"}))
    sibling = tmp_path / "S" / JOB  # a third shard, pulling now: the earlier stages, not its siblings' states
    assert sync.pull(store, JOB, sibling, shard_of="activate").keys() == {"stage/vocabulary.json"}
    sync.pull(store, JOB, d)  # the reduce: both shards' states, then it deletes them
    assert _tree(d).keys() == {"stage/vocabulary.json", "stage/shards/activate/0000/s.npz",
                               "stage/shards/activate/0001/s.npz"}
    for sid in ("0000", "0001"):
        (d / f"stage/shards/activate/{sid}/s.npz").unlink()
    _write(d, {"stage/exemplars/e.npz": b"merged"})
    sync.push(store, JOB, d, sync.commit_name("activate", {"id": "reduce"}))
    e = tmp_path / "E" / JOB  # the next stage fetches the merge, not the shards
    assert sync.pull(store, JOB, e).keys() == {"stage/vocabulary.json", "stage/exemplars/e.npz"}


def test_a_sharded_activate_stage_across_three_roots_gives_the_embedded_result(describe_job, endpoint, tmp_path,
                                                                             monkeypatch):
    """The activate stage split into 3 shards (shard rows 8, windows of 8: 20 sentences), the split, each
    shard and the reduce on different roots, through one s3:// URL: the result equals the embedded run's,
    the reduce's commit lists the shard states as removed, and later stages never fetch them."""
    from neuroscribe.jobs import DescribeJob
    from neuroscribe.service.describe.embedded import run_describe_job
    from neuroscribe.service.queue import InMemoryQueue
    from neuroscribe.settings import Settings

    s3_env(monkeypatch)
    job, model = describe_job
    url = f"s3://{make_bucket(endpoint)}/neuroscribe"

    def settings_of(root):
        return Settings.build(artefacts=root, cache_dir=tmp_path / "cache", models=(model,), artefacts_url=url,
                              s3_endpoint_url=endpoint, shard_rows=8, exemplar_window=8)

    a, b, c = tmp_path / "rootA", tmp_path / "rootB", tmp_path / "rootC"
    q = InMemoryQueue(lease_s=60.0, max_attempts=1)
    rec = q.submit(job)
    plan = [("generate", a), ("cluster", b), ("activate", a),  # the split
            ("activate", b), ("activate", c), ("activate", a),  # shards 0000, 0001, 0002
            ("activate", b), ("analyse", c), ("explain", a)]  # the reduce, then the rest
    _run_stages(q, plan, settings_of)
    done = q.get(rec.id)
    assert done.status.value == "succeeded", done.error
    assert done.progress["activate"].message.startswith("3 of 3 shards committed")
    store = ObjectStore(url, endpoint_url=endpoint)
    reduce = json.loads(store.read_bytes(f"jobs/{rec.id}/commits/activate.reduce.json"))
    assert reduce["removed"] and all(p.startswith("stage/shards/activate/") for p in reduce["removed"])
    assert {p.split("/")[3] for p in reduce["removed"]} == {"0000", "0001", "0002"}
    # once the reduce removed the shard states, every later pull deletes a copy's own (unchanged) ones
    # too, and none is fetched or published again
    for root in (a, b, c):
        assert not list((root / rec.id).rglob("exemplar_shard.npz")), root.name
    later = [json.loads(store.read_bytes(f"jobs/{rec.id}/commits/{s}.json")) for s in ("analyse", "explain")]
    assert not [f["path"] for commit in later for f in commit["files"] if f["path"].startswith("stage/shards/")]

    embedded = run_describe_job(DescribeJob.model_validate(job), tmp_path / "embedded", progress=False,
                                log=lambda _m: None,
                                settings=Settings.build(cache_dir=tmp_path / "cache", exemplar_window=8))
    served = json.loads((a / rec.id / "result" / "descriptions.json").read_text())
    want = embedded.model_dump(mode="json")
    for d in (served, want):
        d["provenance"].pop("created_at")
    assert served == want
