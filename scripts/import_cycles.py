"""Print every import cycle among devserver's modules, and exit with 1 when there is one.

A cycle here is a strongly connected component of grimp's import graph: modules that each reach
the others through imports (type-checking-only imports count: they tie the modules' meaning
together all the same). For each, the script prints one shortest loop through it and every
import inside it with its line, which is where to cut. Usage: `python scripts/import_cycles.py`.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable

import grimp

PACKAGE = "devserver"


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion limits are not ours to
    count on); components of one module that does not import itself are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def imports(module: str) -> list[str]:
        return sorted(graph.find_modules_directly_imported_by(module))

    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(imports(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    components.append(_pop_component(stack, on_stack, module))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(imports(target))))
            elif target in on_stack:
                low[module] = min(low[module], index[target])
    return [
        sorted(c)
        for c in components
        if len(c) > 1 or graph.direct_import_exists(importer=c[0], imported=c[0])
    ]


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component = []
    while True:
        module = stack.pop()
        on_stack.discard(module)
        component.append(module)
        if module == root:
            return component


def shortest_loop(graph: grimp.ImportGraph, component: list[str]) -> list[str]:
    """The shortest path from the component's first module back to itself, inside it."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph.find_modules_directly_imported_by(module) & members):
            if target == start:
                loop = [module]
                while loop[-1] != start:
                    loop.append(came_from[loop[-1]])
                return [*reversed(loop), start]
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"{start} is in a cycle but no path leads back to it")


def imports_inside(graph: grimp.ImportGraph, component: list[str]) -> Iterable[str]:
    members = set(component)
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            lines = ", ".join(str(detail["line_number"]) for detail in details)
            yield f"{importer} -> {imported} (line {lines})"


def main() -> int:
    graph = grimp.build_graph(PACKAGE)
    cycles = strongly_connected(graph)
    for component in cycles:
        loop = " -> ".join(shortest_loop(graph, component))
        print(f"cycle among {len(component)} modules: {loop}")
        for line in imports_inside(graph, component):
            print(f"    {line}")
    if cycles:
        print(f"{len(cycles)} import cycle(s) among {PACKAGE}'s modules")
        return 1
    print(f"no import cycles among {PACKAGE}'s modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
