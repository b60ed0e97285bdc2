"""#39: no import circle anywhere in shared/, services/ and stories/, checked by the
import graph itself (grimp, which import-linter is built on), type-checking imports
included: events -> tracing -> settings -> topology -> events was one, and the
layer contracts did not see it."""

from __future__ import annotations

import grimp


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One circle per direct import that can be followed back to where it started."""
    found: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                loop = [importer, *back]
                found.setdefault(frozenset(loop), loop)
    return list(found.values())


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("shared", "services", "stories", include_external_packages=False)
    assert circles(graph) == []


def test_the_check_finds_a_circle_where_there_is_one() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.events", "a.tracing", "a.settings"):
        graph.add_module(module)
    graph.add_import(importer="a.events", imported="a.tracing")
    graph.add_import(importer="a.tracing", imported="a.settings")
    graph.add_import(importer="a.settings", imported="a.events")
    graph.add_import(importer="a", imported="a.events")
    [loop] = circles(graph)
    assert set(loop) == {"a.events", "a.tracing", "a.settings"}
