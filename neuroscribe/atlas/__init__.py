"""The neuron atlas (docs/atlas.md): every finding about a neuron, from every indexed job, in one
store (``schema``, ``store``, migrations), written by ``ingest`` and read by ``queries``,
``neuron_view`` and ``search_index``; served by ``api`` (JSON and the web UI in ``web/``)."""
