"""The atlas's routes (included by ``service.api.create_app`` when it is given an atlas engine):

=============================================  ================================================
``GET /v1/atlas/models``                       the indexed models, their layers and sites
``GET /v1/atlas/jobs``                         indexed jobs, newest first (paginated)
``GET /v1/atlas/neurons``                      the neurons table: filters, sort, pages
``GET /v1/atlas/neurons/{model}/{layer}/{unit}``  one neuron, everything known about it
``GET /v1/atlas/concepts[/{name}]``            concepts; one concept's experts across models
``GET /v1/atlas/search?q=``                    descriptors, explanations, concepts by words and meaning
``GET /`` and the UI's paths                   the web UI (``atlas/web/``), no data in it
=============================================  ================================================

The JSON routes sit behind the service's key rules (``service.auth``); the UI's static files do
not (they hold no data, and the page must load to ask for the key). Unknown keys are 404 with the
key echoed (at most ``MAX_KEY`` characters). Database calls run in FastAPI's thread pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from neuroscribe.atlas import queries
from neuroscribe.atlas.keys import MAX_KEY
from neuroscribe.atlas.neuron_view import neuron_view
from neuroscribe.atlas.search_index import search_docs
from neuroscribe.atlas.search_results import with_neurons

__all__ = ["router", "ui_router", "WEB", "is_ui_path"]

WEB = Path(__file__).with_name("web")
router = APIRouter(prefix="/v1/atlas", tags=["atlas"],
                   responses={503: {"description": "This server was started without an atlas."}})
ui_router = APIRouter(include_in_schema=False)
_UI_EXACT = frozenset({"/", "/jobs", "/concepts", "/search", "/models"})
_UI_PREFIXES = ("/models/", "/neurons/", "/concepts/", "/static/atlas/")
_NOT_FOUND = {404: {"description": "No such model, neuron or concept (the key is echoed)."}}


def is_ui_path(path: str) -> bool:
    return path in _UI_EXACT or path.startswith(_UI_PREFIXES)


def _engine(request: Request):
    engine = getattr(request.app.state, "atlas", None)
    if engine is None:
        raise HTTPException(503, "this server has no atlas (NEUROSCRIBE_ATLAS_URL)")
    return engine


def _missing(e: queries.NotFound):
    return HTTPException(404, f"no {str(e)[:MAX_KEY + 40]} in the atlas")


Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Text = Annotated[str | None, Query(max_length=MAX_KEY)]


@router.get("/models")
def models(request: Request) -> list[dict]:
    """Every indexed model with its layers (neurons per layer) and sites."""
    return queries.list_models(_engine(request))


@router.get("/jobs")
def jobs(request: Request, limit: Limit = 50, offset: Offset = 0) -> dict:
    """Indexed jobs, newest first: kind, result folder, provenance, parameters, summary."""
    return queries.list_jobs(_engine(request), limit, offset)


@router.get("/neurons", responses=_NOT_FOUND)
def neurons(request: Request, model: Text = None, layer: Annotated[int | None, Query(ge=0, le=100_000)] = None,
            site: Text = None, descriptor: Text = None, concept: Text = None, method: Text = None,
            status: Annotated[Literal[queries.STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
            sort: Annotated[Literal[queries.SORTS], Query()] = "unit",  # type: ignore[valid-type]
            order: Literal["asc", "desc"] = "asc", limit: Limit = 50, offset: Offset = 0) -> dict:
    """The neurons table (per neuron its latest statistics, best AP and best rank position)."""
    try:
        return queries.list_neurons(_engine(request), model=model, layer=layer, site=site, descriptor=descriptor,
                                    concept=concept, method=method, status=status, sort=sort, order=order,
                                    limit=limit, offset=offset)
    except queries.NotFound as e:
        raise _missing(e) from None


@router.get("/neurons/{model}/{layer}/{unit}", responses=_NOT_FOUND)
def neuron(request: Request, model: Annotated[str, ...], layer: int, unit: int, site: Text = None) -> dict:
    """One neuron: statistics, exemplars with per-token activations, descriptors, explanations,
    expert concepts, rank positions and effects, each with the job it came from."""
    try:
        return neuron_view(_engine(request), model[:MAX_KEY + 1], layer, unit, site)
    except queries.NotFound as e:
        raise _missing(e) from None


@router.get("/concepts")
def concepts(request: Request) -> list[dict]:
    """Every concept an experts job indexed: experts and best AP."""
    return queries.list_concepts(_engine(request))


@router.get("/concepts/{name:path}", responses=_NOT_FOUND)
def concept(request: Request, name: str) -> dict:
    """A concept's experts across models, revisions and layers, and the sweep's counts."""
    try:
        return queries.concept_view(_engine(request), name[:MAX_KEY + 1])
    except queries.NotFound as e:
        raise _missing(e) from None


@router.get("/search")
def search(request: Request, q: Annotated[str, Query(min_length=1, max_length=MAX_KEY)],
           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict:
    """Descriptors, explanations and concepts that match ``q`` by words or by meaning, with their neurons."""
    engine = _engine(request)
    return {"query": q, "items": with_neurons(engine, search_docs(engine, q, limit=limit))}


# the pages run only their own files: no inline script or style, nothing from another origin
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _index() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html", headers=_HEADERS)


@ui_router.get("/")
def ui_home() -> FileResponse:
    return _index()


@ui_router.get("/{page}/{rest:path}")
@ui_router.get("/{page}")
def ui_page(page: str, rest: str = "") -> FileResponse:
    if page == "static" and rest.startswith("atlas/"):
        name = rest[len("atlas/"):]
        target = (WEB / name).resolve()
        if "/" in name or not target.is_relative_to(WEB.resolve()) or not target.is_file():
            raise HTTPException(404, f"no file {name[:MAX_KEY]!r}")
        return FileResponse(target, headers=_HEADERS)
    if not is_ui_path("/" + page + ("/" + rest if rest else "")):
        raise HTTPException(404, "Not Found")
    return _index()
