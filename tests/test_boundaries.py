"""The import boundaries: engine/ is torch-only and layered without cycles, demo/ talks to the engine only
through `engine`. Every import statement counts: plain, `from`, relative (`from ..x import`), and the ones
inside functions."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"

# DESIGN.md's layers, lowest first; a module may import only modules of its own layer or below.
LAYERS = (
    ("engine.tokenizer", "engine.device", "engine.poly", "engine.schedule", "engine.distributed"),
    ("engine.model", "engine.data", "engine.prompt", "engine.batches"),
    ("engine.decoding",),
    ("engine.checkpoint", "engine.export", "engine.profiler", "engine.validation"),
    ("engine.bench",),
    ("engine.cli", "engine.train", "engine.evaluate", "engine.decompose", "engine.profile", "engine.examples",
     "engine.scaling", "engine.bench.__main__", "engine"),
)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: pathlib.Path) -> set[str]:
    """Absolute names of everything the file imports (`from .x import y` may name a module x.y or a name y in x;
    both are returned, and the caller keeps the ones that are modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return names


def engine_graph() -> dict[str, set[str]]:
    """engine module -> the engine modules it imports (an import of a package counts as its __init__)."""
    files = {module_name(p): p for p in ENGINE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in imported_modules(path) if m in files and m != name}
    return graph


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names one (engine.bench.__main__ before engine.bench)."""
    best, depth = None, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS (and to DESIGN.md's)"
    return best


def test_engine_never_imports_ui_libraries():
    """Guards against the engine growing a dependency on the UI stack."""
    for path in ENGINE.rglob("*.py"):
        bad = {n for n in imported_modules(path) if n.split(".")[0] in {"gradio", "plotly", "demo"}}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_poly_never_imports_torch():
    """The polynomial code is pure Python: exact integers, nothing on a device."""
    files = list((ENGINE / "poly").rglob("*.py"))
    assert len(files) >= 4
    for path in files:
        bad = {n for n in imported_modules(path) if n.split(".")[0] == "torch" or
               (n.startswith("engine.") and not n.startswith("engine.poly"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_every_engine_module_imports_only_its_layer_or_below():
    """Guards against a module reaching up the stack (e.g. the decoders importing a benchmark helper)."""
    graph = engine_graph()
    assert len(graph) > 25 and "engine.decoding.beam" in graph
    for module, deps in graph.items():
        mine = layer_of(module)
        up = sorted(d for d in deps if layer_of(d) > mine)
        assert not up, f"{module} (layer {mine}) imports {up} from a layer above"


def test_the_engine_import_graph_has_no_cycle():
    """Guards against two modules importing each other, directly or around a loop (a package's __init__
    re-exporting its modules is an edge too, so a module must not import its own package)."""
    graph = engine_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


@pytest.mark.parametrize("graph,message", [
    ({"a": {"b"}, "b": {"a"}}, "a -> b -> a"),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a -> b -> c -> a"),
])
def test_the_cycle_check_finds_cycles(graph, message, monkeypatch):
    """The check above is only worth something if it fails on a cycle."""
    monkeypatch.setitem(globals(), "engine_graph", lambda: graph)
    with pytest.raises(AssertionError, match=message):
        test_the_engine_import_graph_has_no_cycle()


def test_demo_uses_only_the_engine_package():
    """demo/ must go through engine/__init__.py: no torch, no engine submodules (`from engine import name` is
    fine unless the name is a submodule)."""
    submodules = set(engine_graph()) - {"engine"}
    files = list((ROOT / "demo").glob("*.py")) + [ROOT / "app.py"]
    assert len(files) > 5, "demo/ has no modules"
    for path in files:
        bad = {n for n in imported_modules(path) if n.split(".")[0] == "torch" or n in submodules}
        assert not bad, f"{path.name} imports {bad}"


def test_engine_modules_are_reachable_from_the_package():
    import engine  # noqa: F401  (the package imports cleanly, with all its exports)
