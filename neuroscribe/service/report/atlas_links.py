"""Links from a result page to the neuron atlas: ``/neurons/<model key>/<layer>/<unit>``, the
absolute route the atlas UI serves (``neuroscribe ui`` or the service), with the model key of the
result's provenance (``neuroscribe.atlas.keys.model_key``). They carry ``class="atlas"``: they are
server routes, not files of the result folder, and work when the page is opened from the atlas.
"""

from __future__ import annotations

from urllib.parse import quote

from neuroscribe.atlas.keys import model_key
from neuroscribe.service.report.html import esc

__all__ = ["ATLAS_NOTE", "atlas_href", "atlas_link", "provenance_key"]

ATLAS_NOTE = ('<p class="muted">Unit links (dotted underline) open the unit\'s page in the neuroscribe atlas: they '
              "work when this page is opened from the atlas (<code>neuroscribe ui</code>, or the service).</p>")


def provenance_key(provenance) -> str:
    """The atlas model key of a result's provenance (its model, requested revision and weight hash)."""
    return model_key(provenance.model, provenance.requested_revision or None, provenance.weight_sha256)


def atlas_href(key: str, layer: int, unit: int) -> str:
    """``/neurons/<key>/<layer>/<unit>`` (the key percent-encoded where a URL needs it)."""
    return f"/neurons/{quote(key, safe='@~-._')}/{int(layer)}/{int(unit)}"


def atlas_link(key: str, layer: int, unit: int, text: str) -> str:
    """An escaped ``<a class="atlas">`` to the unit's atlas page showing ``text``."""
    return f'<a class="atlas" href="{esc(atlas_href(key, layer, unit))}">{esc(text)}</a>'
