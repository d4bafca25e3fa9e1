"""The layers of the code import one way: each only what lies beneath it.

From the bottom: the configuration and logging; the domain (what a callback, an event, a
subscription is); storage (everything the relay keeps); the infrastructure that talks to the
world (metrics, the SSRF guard, a receiver's TLS, Plivo's client); the operations the API and
the dashboard share; the dashboard; the web layer. `workers/` stands beside the dashboard and
the web layer, on the operations and everything under them; `service.local` (make run) stands
apart. Nothing imports the web layer, `workers/` or `service.local` but themselves (and the
tests).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, ...]] = [
    ("service.settings", "service.logs"),
    ("service.domain",),
    ("service.storage",),
    ("service.metrics", "service.ssrf", "service.endpoint_tls", "service.plivo"),
    ("service.operations",),
    ("service.dashboard", "workers"),
    ("service.web",),
]
APART = ("service.local",)
SIDE_BY_SIDE = {"service.dashboard": "workers", "workers": "service.dashboard"}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> tuple[int, str]:
    """The layer's height and the package (or module) that places `module` in it."""
    for height, packages in enumerate(LAYERS):
        for package in packages:
            if _within(module, package):
                return height, package
    for package in APART:
        if _within(module, package):
            return len(LAYERS), package
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str) -> set[str]:
    """The modules of the relay that `source` imports (`from a import b` counts as `a.b` when
    `a.b` is a module, else as `a`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    ROOT / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(candidate if is_module else node.module)
    return {name for name in found if name.split(".")[0] in ("service", "workers")}


def upward_imports(modules: dict[str, str]) -> list[str]:
    """Each import of a module from a layer above the importer's, or from beside it, in
    `modules` (name: source)."""
    wrong = []
    for importer, source in modules.items():
        height, home = layer_of(importer)
        for imported in sorted(imports(source)):
            their_height, their_home = layer_of(imported)
            if their_home == home:
                continue
            if their_height > height or SIDE_BY_SIDE.get(home) == their_home:
                wrong.append(f"{importer} imports {imported}")
            elif their_home in APART:
                wrong.append(f"{importer} imports {imported}, which stands apart")
    return wrong


def sources() -> dict[str, str]:
    paths = sorted(p for top in ("service", "workers") for p in (ROOT / top).rglob("*.py"))
    modules = {module_name(path): path.read_text() for path in paths}
    del modules["service"]  # the empty package that holds the layers
    return modules


def test_every_import_goes_down_a_layer_or_stays_in_its_own() -> None:
    assert upward_imports(sources()) == []


def test_an_upward_import_is_caught() -> None:
    """The check itself: the domain importing storage, or the dashboard an API handler, fails;
    a worker importing the operations passes."""
    code = sources()
    planted = {
        "service.domain.callbacks": "from service.storage import keys\n",
        "service.dashboard.pages": "from service.web.api.recordings import RecordingsAPI\n",
        "workers.worker": "from service.operations import paging\n",
    }
    wrong = upward_imports({name: code[name] + line for name, line in planted.items()})
    assert len(wrong) == 2, wrong
    assert "service.domain.callbacks imports service.storage.keys" in wrong
    assert "service.dashboard.pages imports service.web.api.recordings" in wrong


def test_service_keeps_at_most_six_modules_at_its_top() -> None:
    top = [p.name for p in (ROOT / "service").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 6, top
