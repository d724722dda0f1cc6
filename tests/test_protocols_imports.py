"""The protocols' modules import each other in layers, never in a cycle: errors.py and state.py
below cycle.py and websocket.py, http.py on top (the next protocol, HTTP/2, builds on the same)."""

from __future__ import annotations

import grimp


def test_the_protocols_import_each_other_in_no_cycle() -> None:
    """No module of devserver.protocols imports, even for type checking only, one that imports
    it back: grimp finds no import it would have to remove to make them acyclic."""
    graph = grimp.build_graph("devserver")
    assert graph.nominate_cycle_breakers("devserver.protocols") == set()
