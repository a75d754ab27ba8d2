"""The layers of the package: each imports only downward, and no module-level cycle.

    core      state layout, graphs, kernels, tempering, evidence, diagnostics (no flax)
    models    nnx modules on the core
    front     exact, sampling, parallel_tempering, tuning, observers, data, plots, config
    training  losses, negatives, metrics, checkpoints, the Trainer
    top       runs, cli, zoo, the package's __init__

Read from the source (ast), so lazy imports inside functions count for the
layer rule too; only module-level imports can form an import cycle.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hamon_nnx"
LAYERS = ("core", "models", "front", "training", "top")
FRONT = {
    "exact",
    "sampling",
    "parallel_tempering",
    "tuning",
    "data",
    "plots",
    "config",
    "observers",
    "version",
    "deprecation",
    "annealing",
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "top"
    if parts[0] in ("core", "models", "training"):
        return parts[0]
    return "front" if parts[0] in FRONT else "top"


def imports(path: pathlib.Path, source: str | None = None):
    """(imported module, at module level?) for every import of the file (or `source`)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text() if source is None else source)
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        at_top = id(node) in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, at_top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:  # `from . import x` imports the module x
                candidate = f"{target}.{alias.name}"
                yield (candidate if module_file(candidate) else target), at_top


def module_file(module: str):
    if not module.startswith("hamon_nnx"):
        return None
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    rel = pathlib.Path(*parts)
    for path in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if path.exists():
            return path
    return None


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def violations(module: str, path: pathlib.Path, source: str | None = None) -> list[str]:
    own = LAYERS.index(layer(module))
    found = []
    for target, _ in imports(path, source):
        if target.split(".")[0] == "flax" and layer(module) == "core":
            found.append(f"{module} (core) imports flax")
        if target.startswith("hamon_nnx") and module_file(target):
            if LAYERS.index(layer(target)) > own:
                found.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downward(module):
    assert violations(module, MODULES[module]) == []


def test_no_import_cycle_at_module_level():
    graph = {
        m: {t for t, top in imports(p) if top and t.startswith("hamon_nnx") and t in MODULES}
        for m, p in MODULES.items()
    }
    # a package's __init__ re-exporting its children is not a cycle of code
    for m in graph:
        graph[m] = {t for t in graph[m] if not (MODULES[m].name == "__init__.py" and t != m)}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t in graph[m]:
            if state.get(t) == "open":
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(t) :], t]))
            if t not in state:
                visit(t, [*path, t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_the_rule_can_fail():
    """A core module importing a model (even lazily) or flax is caught."""
    fake = PACKAGE / "core" / "fake.py"
    lazy = "def f():\n    from ..models.base import EnergyModel\n"
    assert violations("hamon_nnx.core.fake", fake, lazy) == [
        "hamon_nnx.core.fake (core) imports hamon_nnx.models.base (models)"
    ]
    assert violations("hamon_nnx.core.fake", fake, "from flax import nnx\n") == [
        "hamon_nnx.core.fake (core) imports flax"
    ]
    assert violations("hamon_nnx.core.fake", fake, "from . import gibbs\n") == []
