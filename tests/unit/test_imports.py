"""Which parts of the app may import which: read from the source with ast, no import run.

Dependencies point one way (docs/architecture.md): views and transports -> services ->
models, events, broker. The event model does no I/O and knows no Flask; the broker carries
events and knows nothing of who reads them; transports reach the database through services.
"""
import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

def _module_name(path):
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """Return every module *path* imports (at any depth: function-level imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(path): _imports(path) for path in APP.rglob("*.py")}


def _package(module):
    """Return the part of the app *module* belongs to: ``app.broker.hub`` -> ``broker``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _modules_of(package):
    return {name: imports for name, imports in MODULES.items() if _package(name) == package}


def _offenders(package, forbidden):
    return sorted(f"{name} imports {target}" for name, imports in _modules_of(package).items()
                  for target in imports
                  if any(target == f or target.startswith(f + ".") for f in forbidden))


def test_the_event_model_imports_no_flask():
    assert _offenders("events", ["flask", "flask_sqlalchemy", "werkzeug"]) == []


def test_transports_reach_the_database_through_services_only():
    assert _offenders("transports", ["app.models"]) == []


def test_the_broker_knows_nothing_of_auth_api_or_transports():
    assert _offenders("broker", ["app.auth", "app.api", "app.transports", "app.services"]) == []


def _graph():
    """Return app package -> the app packages it imports (the factory, ``app``, left out)."""
    graph = {}
    for name, imports in MODULES.items():
        source = _package(name)
        if source is None:
            continue
        for target in imports:
            if target.startswith("app."):
                other = _package(target)
                if other != source:
                    graph.setdefault(source, set()).add(other)
    return graph


def _cycles(graph):
    """Return the strongly connected groups of more than one package (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in list(graph):
        if node not in index:
            visit(node)
    return set(groups)


def test_no_import_cycles_between_app_packages():
    assert _cycles(_graph()) == set()


def test_pages_share_the_apis_inputs_not_its_modules():
    assert _offenders("pages", ["app.api"]) == []


def test_credentials_know_nothing_of_views_or_services():
    assert _offenders("auth", ["app.api", "app.pages", "app.services", "app.transports"]) == []


@pytest.mark.parametrize("package", ["broker", "events", "transports"])
def test_the_delivery_packages_are_in_no_cycle(package):
    assert not any(package in cycle for cycle in _cycles(_graph()))
