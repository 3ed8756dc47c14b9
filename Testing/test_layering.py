"""The house stays as built: an AST read of the engine (every import, function-local ones included)
finds no import circle and no import against the layer order

    core -> models -> data -> zoo -> inference -> adapt -> pipeline -> evaluation, training -> worker,
    batch, server, remote -> cli

(a module may import its own layer and those before it). A new subpackage must be given a layer here."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "MedSRExtension"
LAYERS = {"version": 0, "core": 0, "models": 1, "data": 2, "zoo": 3, "inference": 4, "adapt": 5, "pipeline": 6,
          "evaluation": 7, "training": 7, "worker": 8, "batch": 8, "server": 8, "remote": 8, "cli": 9,
          "__main__": 10}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """The MedSRExtension modules ``path`` imports (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("MedSRExtension")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.startswith("MedSRExtension"):
                if node.module:  # "from . import x" names submodules only
                    found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in files and m != name} for name, path in files.items()}


def _layer(module: str):
    parts = module.split(".")
    return None if len(parts) < 2 else LAYERS.get(parts[1])


def test_every_subpackage_has_a_layer():
    unknown = sorted({m.split(".")[1] for m in _graph() if len(m.split(".")) > 1 and _layer(m) is None})
    assert unknown == [], f"give these a layer in LAYERS: {unknown}"


def test_no_import_runs_up_the_layers():
    wrong = [f"{a} -> {b}" for a, deps in _graph().items() for b in deps
             if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)]
    assert wrong == [], "\n".join(wrong)


def test_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert circles == [], "\n".join(circles)


# The client half of the worker protocol runs inside the GUI, which opens before PyTorch is installed:
# what it imports of the engine stays inside these (no models, no inference, no pipeline).
CLIENT_SIDE = {"MedSRExtension.worker.protocol": ("core",),
               "MedSRExtension.worker.runner": ("core", "worker.protocol")}


def test_the_worker_client_imports_neither_the_models_nor_the_pipeline():
    graph = _graph()
    wrong = [f"{module} -> {dep}" for module, allowed in CLIENT_SIDE.items() for dep in graph[module]
             if not any(dep == f"MedSRExtension.{a}" or dep.startswith(f"MedSRExtension.{a}.") for a in allowed)]
    assert wrong == [], "\n".join(wrong)


def test_nothing_but_the_worker_package_speaks_the_protocol_from_serve():
    """``serve`` is the process side only; the shared format is ``worker.protocol`` (both halves, the
    server's job and the remote worker import it from there)."""
    users = [name for name, deps in _graph().items() if "MedSRExtension.worker.serve" in deps]
    assert users == [], users


# --- rules written once ------------------------------------------------------------------------

FORMAT_TABLE = ROOT / "core" / "formats.py"


def _format_lists(path: Path) -> list[int]:
    """Lines of ``path`` with a tuple or list literal of two or more volume file endings."""
    endings = {".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"}
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.Tuple, ast.List))
            and sum(isinstance(e, ast.Constant) and e.value in endings for e in node.elts) >= 2]


def test_the_volume_formats_are_listed_only_in_core_formats():
    roots = [ROOT, ROOT.parent / "MedSRModule", ROOT.parent / "MedSRWeb"]
    files = [p for r in roots for p in r.rglob("*.py") if p != FORMAT_TABLE]
    found = [f"{p.relative_to(ROOT.parent)}:{line}" for p in files for line in _format_lists(p)]
    assert found == [], "use MedSRExtension.core.formats instead of a list of endings at " + ", ".join(found)


# --- sizes ---------------------------------------------------------------------------------------

MAX_FUNCTION_LINES = 60


def _long_functions() -> list[str]:
    """'path:name (N lines)' for every engine function or method longer than MAX_FUNCTION_LINES,
    counted from its first decorator (or def) to its last line."""
    found = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
                name = f"{path.relative_to(ROOT).as_posix()}:{node.name}"
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{name} ({lines} lines)")
    return sorted(found)


def test_no_engine_function_is_longer_than_60_lines():
    assert _long_functions() == [], "split into named helpers: " + ", ".join(_long_functions())
