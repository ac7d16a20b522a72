"""What a result folder is: its kind, its key, its files; one clear line when it is none.

A result folder holds ``job.json`` and the kind's result file: ``experts.json`` (experts),
``descriptions.json`` (describe) or ``rankings.json`` (rank). Its key in the atlas is the service's
job id when the folder is ``ARTEFACTS/<job id>/result`` (or ``ARTEFACTS/<job id>``), else
``dir-`` and 16 hex digits of the sha256 of its resolved path: indexing the same folder again
replaces its rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from neuroscribe.atlas.ingest.describe_files import describe_result
from neuroscribe.errors import InvalidInput

__all__ = ["ResultFolder", "locate_folder", "read_folder", "RESULT_FILES"]

RESULT_FILES = {"experts": "experts.json", "describe": "descriptions.json", "rank": "rankings.json"}
_JOB_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class ResultFolder:
    path: Path
    kind: str
    key: str
    job: dict
    result: dict
    summary: str | None

    def file(self, name: str) -> Path:
        return self.path / name


def _key(path: Path) -> str:
    for part in (path.name, path.parent.name if path.name == "result" else ""):
        if _JOB_ID.fullmatch(part):
            return part
    return "dir-" + hashlib.sha256(str(path).encode()).hexdigest()[:16]


def _json(path: Path, folder: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput("DIR", f"{folder}: {path.name} cannot be read as JSON ({type(e).__name__}: "
                                  f"{str(e)[:200]})") from e
    if not isinstance(data, dict):
        raise InvalidInput("DIR", f"{folder}: {path.name} is not a JSON object")
    return data


def locate_folder(path: str | Path) -> tuple[Path, dict, str, Path]:
    """(folder, job, kind, result file) of the result folder at ``path``, its result not read yet;
    ``InvalidInput`` naming the folder and what is missing."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InvalidInput("DIR", f"{folder}: not a directory")
    folder = folder.resolve()
    if not (folder / "job.json").is_file():
        if (folder / "result" / "job.json").is_file():  # the service's job folder: its result is inside
            folder = folder / "result"
        else:
            present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
            raise InvalidInput("DIR", f"{folder}: not a neuroscribe result folder: no job.json (it holds {present})")
    job = _json(folder / "job.json", folder)
    kind = job.get("kind")
    if kind not in RESULT_FILES:
        raise InvalidInput("DIR", f"{folder}: job.json has kind {str(kind)[:40]!r}; the atlas indexes "
                                  f"{', '.join(RESULT_FILES)}")
    result_file = folder / RESULT_FILES[kind]
    if not result_file.is_file():
        raise InvalidInput("DIR", f"{folder}: a {kind} job's folder without {RESULT_FILES[kind]} (the job did not "
                                  "finish, or the folder was copied without it)")
    return folder, job, kind, result_file


def read_folder(path: str | Path) -> ResultFolder:
    """The result folder at ``path`` (``locate_folder``) with its result read."""
    folder, job, kind, result_file = locate_folder(path)
    # a describe result's units are read with only the fields the atlas uses (describe_files; ~700 MB at 460k units)
    result = (kind == "describe" and describe_result(result_file)) or _json(result_file, folder)
    if result.get("kind") not in (None, kind) or "provenance" not in result:
        raise InvalidInput("DIR", f"{folder}: {RESULT_FILES[kind]} is not a {kind} result (no provenance)")
    summary_file = folder / "summary.txt"
    summary = summary_file.read_text(encoding="utf-8", errors="replace")[:20_000] if summary_file.is_file() else None
    return ResultFolder(path=folder, kind=kind, key=_key(folder), job=job, result=result, summary=summary)
