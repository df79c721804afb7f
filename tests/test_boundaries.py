"""The import boundary: engine/ is torch-only, demo/ talks to the engine only through `engine`."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_engine_never_imports_ui_libraries():
    """Guards against the engine growing a dependency on the UI stack."""
    for path in (ROOT / "engine").rglob("*.py"):
        bad = {n for n in imports(path) if n.split(".")[0] in {"gradio", "plotly", "demo"}}
        assert not bad, f"{path.name} imports {bad}"


def test_demo_uses_only_the_engine_package():
    """demo/ must go through engine/__init__.py: no torch, no engine submodules."""
    files = list((ROOT / "demo").glob("*.py")) + [ROOT / "app.py"]
    assert files, "demo/ has no modules"
    for path in files:
        if not path.exists():
            continue
        bad = {n for n in imports(path) if n.split(".")[0] == "torch" or n.startswith("engine.")}
        assert not bad, f"{path.name} imports {bad}"


def test_engine_modules_are_reachable_from_the_package():
    import engine  # noqa: F401  (the package imports cleanly, with all its exports)
