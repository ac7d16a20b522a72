"""Stage publication through an artefact store: a worker works in a local copy of the job's folder
(``settings.artefacts/<job id>``) and publishes what its stage wrote by write-then-commit-key.

In the store, under ``jobs/<job id>/``:

    blobs/<sha256>           the content of a file, named by its sha256 (written first)
    commits/<name>.json      one per stage (or shard) that committed, written last:
                             {"format", "job_id", "name", "seq", "files": [{"path", "size", "sha256"}],
                              "removed": [path, ...]}  (committed files the stage deleted: a reduce's
                              shard states, which later stages then never fetch)

``push(store, job_id, local_dir, stage)`` uploads the files of ``local_dir`` that the committed
stages do not already hold (new or changed; hidden names and ``*.part`` are temporary and never
published), then writes the stage's commit. ``pull(store, job_id, local_dir)`` reads the commits
and fetches exactly the files they list, each checked against its size and sha256 before it is
renamed into place; a file already there with the committed content is not fetched again (a
hidden ``.neuroscribe-synced.json`` in the folder remembers what was synced). When two commits
list one path, the later stage's wins (``seq``: how many other commits its stage saw).

A crash between the uploads and the commit leaves blobs no commit lists: nobody reads them, and a
stage that runs again (a retry) uploads again and rewrites its commit, last. Blobs are named by
their content, so no upload -- a retry's, or one from a worker that lost its lease -- can change
what an earlier commit lists. Paths read from a commit are checked like keys (no '..', no leading
'/', ...): a commit cannot make a reader write outside the job's folder.

With the default store (the artefacts folder itself, shared by every machine) both do nothing:
the folder is the store. ``forget`` deletes a job's objects (``DELETE /v1/jobs/{id}``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from neuroscribe.errors import InvalidInput, NeuroscribeError
from neuroscribe.service.storage.base import ArtefactStore
from neuroscribe.service.storage.keys import check_key

__all__ = ["pull", "push", "forget", "commit_name", "shares_folder", "read_commits", "CommitError", "MARKER"]

FORMAT = "neuroscribe-commit-1"
MARKER = ".neuroscribe-synced.json"
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_SHA = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class CommitError(NeuroscribeError):
    """A commit in the store cannot be used (not JSON, a bad path, a file that does not match it)."""


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Commit:
    name: str
    seq: int
    files: tuple[_File, ...]
    removed: tuple[str, ...] = ()  # paths of earlier commits this stage deleted (a reduce's shard states)


def _job(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InvalidInput("job_id", f"{job_id!r} is not a job id (32 lowercase hex characters)")
    return f"jobs/{job_id}"


def commit_name(stage: str, shard: dict | None = None) -> str:
    """The commit of a stage (``generate``) or of one of its shards (``activate.3``, ``activate.reduce``)."""
    name = stage if not shard else f"{stage}.{shard.get('id')}"
    if not _NAME.fullmatch(name):
        raise InvalidInput("stage", f"{name!r} cannot name a commit (letters, digits, '_', '-', '.')")
    return name


def shares_folder(store: ArtefactStore, local_dir: Path) -> bool:
    """Whether ``local_dir`` (a job's folder) lies in the store itself: nothing to copy."""
    folder = store.folder
    return folder is not None and Path(folder).resolve() == Path(local_dir).parent.resolve()


# ---------------------------------------------------------------- commits


def _parse_commit(key: str, data: bytes) -> Commit:
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT or not isinstance(doc.get("files"), list):
            raise ValueError(f"not a {FORMAT} document")
        files = []
        for f in doc["files"]:
            path, size, sha = f["path"], f["size"], f["sha256"]
            check_key(path, field=f"{key}: path")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not _SHA.fullmatch(str(sha)):
                raise ValueError(f"{path!r}: bad size or sha256")
            files.append(_File(path, size, sha))
        removed = doc.get("removed", [])
        if not isinstance(removed, list):
            raise ValueError("removed is not a list")
        for path in removed:
            check_key(path, field=f"{key}: removed")
        seq = doc.get("seq", 0)
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"seq {seq!r} is not an integer")
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CommitError(f"commit {key} cannot be used: {e}") from None
    return Commit(name=key.rsplit("/", 1)[-1].removesuffix(".json"), seq=seq, files=tuple(files),
                  removed=tuple(removed))


def read_commits(store: ArtefactStore, job_id: str) -> list[Commit]:
    """The job's commits, in the order they apply (earlier stages first)."""
    out = []
    for key in store.list(f"{_job(job_id)}/commits"):
        if not key.endswith(".json"):
            continue
        try:
            data = store.read_bytes(key)
        except FileNotFoundError:  # deleted since the listing (the job was forgotten)
            continue
        out.append(_parse_commit(key, data))
    return sorted(out, key=lambda c: (c.seq, c.name))


def _effective(commits: list[Commit]) -> tuple[dict[str, _File], dict[str, str]]:
    """What the commits hold, applied in order: path -> file, and the paths a commit removed and no
    later one wrote again -> the sha256 they had before."""
    files: dict[str, _File] = {}
    gone: dict[str, str] = {}
    for c in commits:
        for path in c.removed:
            if path in files:
                gone[path] = files.pop(path).sha256
        for f in c.files:
            files[f.path] = f
            gone.pop(f.path, None)
    return files, gone


# ---------------------------------------------------------------- the local folder


def _load_marker(local_dir: Path) -> dict:
    try:
        data = json.loads((local_dir / MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_marker(local_dir: Path, known: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.tmp-", dir=local_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(known, f)
        os.replace(tmp, local_dir / MARKER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stamp(path: Path, sha: str) -> dict:
    st = path.stat()
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _known_sha(path: Path, entry) -> str | None:
    """The file's sha256 as the marker remembers it, if the file has not changed since."""
    if not isinstance(entry, dict):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if path.is_symlink() or st.st_size != entry.get("size") or st.st_mtime_ns != entry.get("mtime_ns"):
        return None
    return entry.get("sha256")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local_files(local_dir: Path) -> list[tuple[str, Path]]:
    """The job's files to publish: regular files, not links, no hidden segment, no ``*.part``."""
    out = []
    for folder, dirs, files in os.walk(local_dir):  # links to folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or name.endswith(".part") or path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(local_dir).as_posix()
            out.append((check_key(rel, field="artefact"), path))
    return out


# ---------------------------------------------------------------- pull, push, forget


def pull(store: ArtefactStore, job_id: str, local_dir: Path, *, shard_of: str | None = None) -> dict[str, str]:
    """Fetch into ``local_dir`` every file the job's commits list; ``{path: sha256}`` of them.
    ``shard_of`` (a stage): the caller runs one shard of it, which needs none of its sibling shards'
    commits (``STAGE.<id>``: only the reduce reads them)."""
    local_dir = Path(local_dir)
    if shares_folder(store, local_dir):
        return {}
    commits = read_commits(store, job_id)
    if shard_of:
        commits = [c for c in commits if not c.name.startswith(f"{shard_of}.")]
    files, gone = _effective(commits)
    if not files:
        return {}
    local_dir.mkdir(parents=True, exist_ok=True)
    root = local_dir.resolve()
    known = _load_marker(local_dir)
    for path, sha in gone.items():  # a later stage deleted them: so does this copy,
        target = local_dir / path  # unless changed here since (then it is this folder's own file)
        if _known_sha(target, known.get(path)) == sha and target.resolve().is_relative_to(root):
            target.unlink(missing_ok=True)
            known.pop(path, None)
    try:
        for path, f in files.items():
            target = local_dir / path
            if not target.resolve().is_relative_to(root):
                raise CommitError(f"{path!r} leaves the job's folder (a link in {local_dir})")
            if _known_sha(target, known.get(path)) == f.sha256:
                continue
            if target.is_file() and not target.is_symlink() and target.stat().st_size == f.size \
                    and _sha256(target) == f.sha256:  # there already (written here), not yet remembered
                known[path] = _stamp(target, f.sha256)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.pull-", dir=target.parent)
            os.close(fd)
            try:
                store.get_file(f"{_job(job_id)}/blobs/{f.sha256}", Path(tmp))
                size, sha = os.path.getsize(tmp), _sha256(Path(tmp))
                if (size, sha) != (f.size, f.sha256):
                    raise CommitError(f"{path!r}: the stored blob has {size} bytes, sha256 {sha[:12]}..., not "
                                      f"the committed {f.size} bytes, {f.sha256[:12]}...")
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            known[path] = _stamp(target, f.sha256)
    finally:
        _save_marker(local_dir, known)
    return {path: f.sha256 for path, f in files.items()}


def push(store: ArtefactStore, job_id: str, local_dir: Path, stage: str) -> list[str]:
    """Publish what ``stage`` wrote into ``local_dir``: the new or changed files' blobs, then the
    commit ``stage`` (``commit_name``), last. The paths it lists."""
    local_dir = Path(local_dir)
    name = commit_name(stage)
    if shares_folder(store, local_dir):
        return []
    others = [c for c in read_commits(store, job_id) if c.name != name]
    committed, _ = _effective(others)
    known = _load_marker(local_dir) if local_dir.is_dir() else {}
    entries = []
    for rel, path in _local_files(local_dir) if local_dir.is_dir() else ():
        sha = _known_sha(path, known.get(rel)) or _sha256(path)
        if rel in committed and committed[rel].sha256 == sha:
            continue
        blob = f"{_job(job_id)}/blobs/{sha}"
        if not store.exists(blob):  # named by its content: one already there holds these bytes
            store.put_file(blob, path)
        known[rel] = _stamp(path, sha)
        entries.append({"path": rel, "size": known[rel]["size"], "sha256": sha})
    # committed files this folder held (pulled or published from here) and this stage deleted: later
    # readers skip them. Not the files of commits made since the pull (a concurrent shard's)
    removed = sorted(p for p in committed if p in known and not (local_dir / p).exists())
    _write_commit(store, job_id, name, len(others), entries, removed)  # last: the stage is published now
    if entries:
        _save_marker(local_dir, known)
    return [e["path"] for e in entries]


def _write_commit(store: ArtefactStore, job_id: str, name: str, seq: int, entries: list[dict],
                  removed: list[str] = ()) -> None:
    doc = {"format": FORMAT, "job_id": job_id, "name": name, "seq": seq, "files": entries, "removed": list(removed)}
    store.write_bytes(f"{_job(job_id)}/commits/{name}.json", json.dumps(doc, indent=1).encode())


def forget(store: ArtefactStore, job_id: str) -> int:
    """Delete the job's objects (its blobs and commits); how many. Nothing with the default store."""
    return store.delete_prefix(_job(job_id))
