"""Datasets uploaded once and named by hash (``POST /v1/datasets``): every read and write of them.

A dataset is stored as its canonical JSON, ``{"dataset": {...}, "kind": "describe"|"rank"}`` (keys
sorted, no spaces, UTF-8), under the sha256 of those bytes: the same dataset uploaded by anyone is
one file, and a job names it by that hash (``{"sha256": ...}``, ``jobs.common.DatasetRef``). The
hash covers the kind, so a describe job cannot take a rank dataset's rows for its own.

Keys in the artefacts storage (``service.storage.open_store(settings)``: the artefacts folder, or
the object store of ``NEUROSCRIBE_ARTEFACTS_URL``, which every API process and worker then shares)::

    datasets/<sha256>.json                  the dataset (canonical bytes)
    datasets/owners/<owner>/<sha256>.json   an uploader's claim: {"bytes", "kind", "rows", "name"}
    datasets/holders/<sha256>/<owner>       the same claim by dataset: who may use it, when to delete it

``<owner>`` is ``u`` + the hex of the key's user name (no name can leave its folder); without API
keys every caller is the one owner ``u``. A caller may use, read and delete the datasets it holds a
claim on (an admin: every dataset); another caller's dataset is "not stored" to it, and 201/200 on
upload says whether the *caller* held it before, so nobody learns what others uploaded.

Usage and quotas: a key's usage is the sum of its claims' bytes, read from the store at each upload
(no counter to drift, to lose in a crash or to keep in step between API processes). An upload
reserves, then checks: it writes its claim, sums the owner's claims and, over the quota, deletes its
claim and refuses. Two concurrent uploads of one owner each see the other's claim, so the quota is
never exceeded (at worst both are refused and one is sent again); this needs read-after-write
listing, which a POSIX folder and S3 give. Only then is the dataset written (atomically: a temporary
name, then a rename), so a refused upload writes nothing. Deleting the last claim deletes the file;
an upload racing that delete can find its file gone: the next upload of it writes it again.

The workers (``service.executor``) resolve a job's reference with ``resolve_dataset``: the bytes are
read, checked against the hash (a changed file is refused, never used), and the job is validated
again with the dataset inline, so a handler sees a job as if it had been submitted whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from neuroscribe.errors import InvalidInput, NeuroscribeError
from neuroscribe.jobs.common import DatasetRef
from neuroscribe.jobs.describe import DatasetSpec
from neuroscribe.jobs.rank import AttributeDataSpec
from neuroscribe.service.policy import JobRefused, Refusal
from neuroscribe.service.storage import open_store
from neuroscribe.settings import Settings

__all__ = ["DATASET_KINDS", "DatasetStore", "StoredDataset", "DatasetTooLarge", "QuotaExceeded",
           "canonical", "open_datasets", "resolve_dataset", "parse_digest"]

DATASET_KINDS: dict[str, type[BaseModel]] = {"describe": DatasetSpec, "rank": AttributeDataSpec}
_HEX = re.compile(r"[0-9a-f]{64}")
_REF_LOC = ("dataset", "sha256")


@dataclass(frozen=True)
class StoredDataset:
    sha256: str
    kind: str
    rows: int
    bytes: int
    name: str = ""

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


class DatasetTooLarge(NeuroscribeError):
    """One dataset over ``dataset_max_bytes`` (the API's 413)."""


class QuotaExceeded(NeuroscribeError):
    """The upload would take its owner over ``dataset_quota_bytes`` (the API's 403)."""


def canonical(kind: str, spec: BaseModel) -> bytes:
    """The bytes a dataset is stored as, and hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps({"dataset": spec.model_dump(mode="json"), "kind": kind}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_digest(text: str) -> str | None:
    """``sha256:<hex>`` (or the hex alone) as 64 lowercase hex digits; None when it is not one."""
    digest = text.strip().removeprefix("sha256:").lower()
    return digest if _HEX.fullmatch(digest) else None


def _owner(user: str | None) -> str:
    return "u" + (user or "").encode("utf-8").hex()


def _human(n: int) -> str:
    return f"{n} bytes ({n / 2**20:.1f} MiB)" if n >= 2**20 else f"{n} bytes"


class DatasetStore:
    """Datasets by hash over a store with ``read_bytes``, ``write_bytes``, ``exists``, ``delete``, ``list``."""

    def __init__(self, store):
        self.store = store

    # ------------------------------------------------------------ keys
    @staticmethod
    def _data(sha: str) -> str:
        return f"datasets/{sha}.json"

    @staticmethod
    def _claim(owner: str, sha: str) -> str:
        return f"datasets/owners/{owner}/{sha}.json"

    @staticmethod
    def _holder(sha: str, owner: str) -> str:
        return f"datasets/holders/{sha}/{owner}"

    def _read(self, key: str) -> bytes | None:
        try:
            return self.store.read_bytes(key)
        except (FileNotFoundError, KeyError):
            return None

    def _info(self, key: str, sha: str) -> StoredDataset | None:
        raw = self._read(key)
        if raw is None:
            return None
        d = json.loads(raw)
        return StoredDataset(sha256=sha, kind=d["kind"], rows=int(d["rows"]), bytes=int(d["bytes"]),
                             name=str(d.get("name", "")))

    # ------------------------------------------------------------ uploads
    def put(self, kind: str, spec: BaseModel, user: str | None, *, max_bytes: int,
            quota_bytes: int) -> tuple[StoredDataset, bool]:
        """Store the validated ``spec`` for ``user``: (what is stored, whether this user's claim is new).
        Raises ``DatasetTooLarge`` over ``max_bytes``, ``QuotaExceeded`` over ``quota_bytes`` (0: none)."""
        data = canonical(kind, spec)
        sha = hashlib.sha256(data).hexdigest()
        if len(data) > max_bytes:
            raise DatasetTooLarge(f"the dataset is {_human(len(data))} as canonical JSON; this server stores at most "
                                  f"{_human(max_bytes)} per dataset (NEUROSCRIBE_DATASET_MAX_BYTES)")
        owner = _owner(user)
        info = StoredDataset(sha, kind, len(spec.texts), len(data), spec.name)
        if self.store.exists(self._claim(owner, sha)):  # held already: nothing is charged again
            if not self.store.exists(self._data(sha)):  # lost to a racing delete: written again
                self.store.write_bytes(self._data(sha), data)
            return info, False
        claim = json.dumps({"bytes": info.bytes, "kind": kind, "rows": info.rows, "name": info.name}).encode()
        self.store.write_bytes(self._claim(owner, sha), claim)  # reserve, then check (see the module doc)
        if quota_bytes:
            held = self.held(user)
            used = sum(d.bytes for d in held)
            if used > quota_bytes:
                self.store.delete(self._claim(owner, sha))
                before = used - info.bytes
                who = f"user {user!r}" if user else "the uploads (no API keys: one quota for all)"
                raise QuotaExceeded(
                    f"{who}: this dataset ({_human(info.bytes)}) would bring the datasets stored to {_human(used)}; "
                    f"the quota is {_human(quota_bytes)} per key (NEUROSCRIBE_DATASET_QUOTA_BYTES), "
                    f"{_human(before)} in use in {len(held) - 1} dataset(s); delete one first "
                    f"(DELETE /v1/datasets/sha256:<hex>, GET /v1/datasets/usage lists them)")
        self.store.write_bytes(self._holder(sha, owner), b"")
        self.store.write_bytes(self._data(sha), data)  # the same bytes whoever writes them
        return info, True

    def held(self, user: str | None) -> list[StoredDataset]:
        """The datasets ``user`` holds a claim on."""
        out = []
        for key in self.store.list(f"datasets/owners/{_owner(user)}/"):
            sha = key.rpartition("/")[2].removesuffix(".json")
            info = self._info(key, sha) if _HEX.fullmatch(sha) else None
            if info is not None:
                out.append(info)
        return out

    # ------------------------------------------------------------ who may use what
    def info(self, sha: str, user: str | None, *, admin: bool = False) -> StoredDataset | None:
        """What is stored under ``sha`` if ``user`` may use it (holds it, or is an admin); else None."""
        found = self._info(self._claim(_owner(user), sha), sha)
        if found is None and admin:
            for key in self.store.list(f"datasets/holders/{sha}/"):
                found = self._info(self._claim(key.rpartition("/")[2], sha), sha)
                if found is not None:
                    break
        return found if found is not None and self.store.exists(self._data(sha)) else None

    def delete(self, sha: str, user: str | None, *, admin: bool = False) -> bool:
        """Drop ``user``'s claim (an admin's delete drops every claim); the file goes with the last
        claim. False when there was nothing ``user`` may delete."""
        if self.info(sha, user, admin=admin) is None:
            return False
        owners = [k.rpartition("/")[2] for k in self.store.list(f"datasets/holders/{sha}/")]
        mine = owners if admin else [_owner(user)]
        for owner in mine:
            self.store.delete(self._claim(owner, sha))
            self.store.delete(self._holder(sha, owner))
        if not self.store.list(f"datasets/holders/{sha}/"):
            self.store.delete(self._data(sha))
        return True

    # ------------------------------------------------------------ reads
    def read(self, sha: str) -> bytes:
        """The stored bytes, checked against ``sha``; ``InvalidInput`` (``dataset.sha256``) when missing
        or changed."""
        data = self._read(self._data(sha))
        if data is None:
            raise JobRefused(Refusal(_REF_LOC, sha, f"no dataset sha256:{sha} is stored (deleted since, or never "
                                                    "uploaded: POST /v1/datasets)", "dataset_not_found"))
        if hashlib.sha256(data).hexdigest() != sha:
            raise JobRefused(Refusal(_REF_LOC, sha, f"the stored dataset sha256:{sha} does not match its hash: it "
                                                    "was changed or damaged in storage and is not used; upload it "
                                                    "again", "dataset_corrupt"))
        return data

    def resolve(self, job: BaseModel) -> BaseModel:
        """``job`` with its referenced dataset inline, validated again as a whole (its own checks
        across fields included); ``job`` itself when it carries its dataset."""
        ref = getattr(job, "dataset", None)
        if not isinstance(ref, DatasetRef):
            return job
        doc = json.loads(self.read(ref.sha256))
        if doc.get("kind") != job.kind:
            raise JobRefused(Refusal(_REF_LOC, ref.sha256, f"sha256:{ref.sha256} is a {doc.get('kind')} dataset; a "
                                                           f"{job.kind} job needs a {job.kind} dataset",
                                     "dataset_kind"))
        return type(job).model_validate({**job.model_dump(mode="json"), "dataset": doc["dataset"]})

    def resolve_for(self, job: BaseModel, user: str | None, *, admin: bool = False) -> BaseModel:
        """``resolve`` for a caller of the API: a dataset it may not use is refused as not stored
        (``JobRefused`` at ``dataset.sha256``); ``ValidationError`` when the job and its dataset do
        not go together."""
        ref = getattr(job, "dataset", None)
        if isinstance(ref, DatasetRef) and self.info(ref.sha256, user, admin=admin) is None:
            raise JobRefused(Refusal(_REF_LOC, ref.sha256, f"no dataset sha256:{ref.sha256} is stored for this key "
                                                           "(upload it first: POST /v1/datasets, or `neuroscribe "
                                                           "datasets upload`)", "dataset_not_found"))
        return self.resolve(job)


def open_datasets(settings: Settings, root: Path | str | None = None) -> DatasetStore:
    """The datasets in the artefacts storage of ``settings`` (``storage.open_store``: the artefacts
    folder, or the object store of ``artefacts_url``); ``root``: that folder instead of ``settings.artefacts``."""
    if root is not None:
        settings = dataclasses.replace(settings, artefacts=Path(root))
    return DatasetStore(open_store(settings))


def resolve_dataset(job: BaseModel, settings: Settings) -> BaseModel:
    """What a worker does where it parses a job (``service.executor``): a job naming its dataset by
    hash gets it inline, read from the store and checked against the hash. ``InvalidInput`` (never
    retried) when it is missing or changed, or no longer goes with the job."""
    if not isinstance(getattr(job, "dataset", None), DatasetRef):
        return job
    try:
        return open_datasets(settings).resolve(job)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "dataset"
        raise InvalidInput(loc, f"the referenced dataset: {first['msg']}") from None
