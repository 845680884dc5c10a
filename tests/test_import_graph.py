"""
The import graph of dinno_ros: no cycle, and a ROS-free core.

Every module under dinno_ros/ is parsed with ``ast``; its imports of dinno_ros modules, at module
level and inside functions, relative ones resolved, are the edges of the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = 'dinno_ros'
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob('*.py'))}


def _imported_names(name: str, path: Path) -> set[str]:
    """Return every absolute module name ``name`` imports (``from a import b``: a and a.b)."""
    is_package = path.name == '__init__.py'
    package = name if is_package else name.rpartition('.')[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[: len(base) - (node.level - 1)]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            found.add(module)
            found.update(f'{module}.{alias.name}' for alias in node.names)
    return found


def _parents(name: str) -> set[str]:
    parts = name.split('.')
    return {'.'.join(parts[:i]) for i in range(1, len(parts))}


def _graph() -> dict[str, set[str]]:
    """
    Return module -> the dinno_ros modules it imports.

    Importing ``a.b.c`` runs the package ``a.b`` first, so the target's packages count too, except
    the importer's own (already running when it imports).
    """
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own = _parents(name) | {name}
        edges = set()
        for target in _imported_names(name, path):
            for module in {target} | _parents(target):
                if module in modules and module not in own:
                    edges.add(module)
        graph[name] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle as a list of modules (first repeated last), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                start = stack.index(nxt)
                return stack[start:] + [nxt]
            if colour[nxt] == white:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_the_package() -> None:
    graph = _graph()
    assert 'dinno_ros.core.learning.registry' in graph
    assert 'dinno_ros.core.learning.round' in graph['dinno_ros.core.learning.simulation']
    assert 'dinno_ros.core.world.grid' in graph['dinno_ros.core.learning.agent']


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert _find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle or [])


def test_core_is_ros_free() -> None:
    core = f'{PACKAGE}.core'
    bad = []
    for name, path in _modules().items():
        if name != core and not name.startswith(core + '.'):
            continue
        for target in sorted(_imported_names(name, path)):
            top = target.split('.')[0]
            if (
                top == 'rclpy'
                or target == f'{PACKAGE}.ros'
                or target.startswith(f'{PACKAGE}.ros.')
            ):
                bad.append(f'{name} imports {target}')
    assert not bad, '; '.join(bad)
