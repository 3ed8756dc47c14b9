"""Static checks of the Slicer extension that cannot be run here: the CMake lists name files that
exist and cover every script, the widget code and the .ui agree, the parameter-node bindings
name real fields with widgets that can show them, and the module's layering holds."""
from __future__ import annotations

import ast
import fnmatch
import json
import os
import py_compile
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "MedSRModule")
MODULE_PY = os.path.join(MODULE, "MedSR.py")
UI = os.path.join(MODULE, "Resources", "UI", "MedSR.ui")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _cmake_set(text: str, name: str) -> list[str]:
    """Items of ``set(NAME ...)`` in a CMake file (first occurrence)."""
    m = re.search(r"set\(\s*%s\s+(.*?)\)" % re.escape(name), text, re.S)
    assert m, f"set({name} ...) not found"
    return m.group(1).split()


def _cmake_globs(text: str) -> list[tuple[str, str, str]]:
    """(kind, variable, pattern) of every file(GLOB|GLOB_RECURSE VAR ... pattern ...) call."""
    found = []
    for kind, var, body in re.findall(r"file\(\s*(GLOB_RECURSE|GLOB)\s+(\w+)(.*?)\)", text, re.S):
        for token in body.split():
            if "*" in token:
                found.append((kind, var, token))
    return found


def _expand(pattern: str, kind: str) -> set[str]:
    """Absolute paths a CMake glob matches (GLOB: one folder; GLOB_RECURSE: the folder tree)."""
    pattern = pattern.replace("${CMAKE_CURRENT_SOURCE_DIR}", MODULE).replace("${PROJECT_SOURCE_DIR}", ROOT)
    base, name = os.path.split(pattern)
    if not os.path.isdir(base):
        return set()
    if kind == "GLOB":
        return {os.path.join(base, f) for f in os.listdir(base) if fnmatch.fnmatch(f, name)}
    return {os.path.join(d, f) for d, _, files in os.walk(base) for f in files if fnmatch.fnmatch(f, name)}


def _python_files(folder: str) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
            if f.endswith(".py") and "__pycache__" not in d}


MODULE_CMAKE = _read(os.path.join(MODULE, "CMakeLists.txt"))
ROOT_CMAKE = _read(os.path.join(ROOT, "CMakeLists.txt"))


def test_every_file_the_module_cmake_names_exists():
    names = [n.replace("${MODULE_NAME}", "MedSR") for n in
             _cmake_set(MODULE_CMAKE, "MODULE_PYTHON_SCRIPTS") + _cmake_set(MODULE_CMAKE, "MODULE_PYTHON_RESOURCES")]
    listed = [n for n in names if not n.startswith("${")]
    assert "MedSR.py" in listed and "Resources/UI/MedSR.ui" in listed and "Resources/Icons/MedSR.png" in listed
    missing = [n for n in listed if not os.path.exists(os.path.join(MODULE, n))]
    assert not missing, f"MedSRModule/CMakeLists.txt names missing files: {missing}"
    for kind, var, pattern in _cmake_globs(MODULE_CMAKE):
        base = os.path.dirname(pattern.replace("${CMAKE_CURRENT_SOURCE_DIR}", MODULE)
                               .replace("${PROJECT_SOURCE_DIR}", ROOT))
        assert os.path.isdir(base), f"{var} globs in a folder that does not exist: {pattern}"


def test_every_python_file_of_the_module_and_the_engine_is_packaged():
    covered = {os.path.join(MODULE, "MedSR.py")}
    for kind, var, pattern in _cmake_globs(MODULE_CMAKE):
        if pattern.endswith(".py"):
            covered |= _expand(pattern, kind)
    wanted = _python_files(MODULE) | _python_files(os.path.join(ROOT, "MedSRExtension"))
    missing = sorted(os.path.relpath(p, ROOT) for p in wanted - covered)
    assert not missing, f"scripts the Slicer build would leave out: {missing}"
    scripts = _cmake_set(MODULE_CMAKE, "MODULE_PYTHON_SCRIPTS")
    for kind, var, pattern in _cmake_globs(MODULE_CMAKE):
        if pattern.endswith(".py"):
            appended = re.search(r"foreach\(\s*\w+\s+IN\s+LISTS\s+%s\s*\).*?list\(APPEND MODULE_PYTHON_SCRIPTS" % var,
                                 MODULE_CMAKE, re.S)
            assert "${%s}" % var in scripts or appended, f"{var} is globbed but never added to the module's SCRIPTS"


def test_extension_metadata_and_catalog_entry_agree():
    for call in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(MedSRModule)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert call in ROOT_CMAKE, f"root CMakeLists.txt lacks {call}"
    meta = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', ROOT_CMAKE))
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert key in meta, f"{key} is not set"
    for url in [meta["EXTENSION_ICONURL"]] + meta["EXTENSION_SCREENSHOTURLS"].split():
        path = url.split("/main/", 1)[-1]
        assert os.path.isfile(os.path.join(ROOT, path)), f"{url} points at {path}, which is not in the repository"
    entry = json.loads(_read(os.path.join(ROOT, "ExtensionsIndex", "MedSR.json")))
    assert {"$schema", "category", "scm_url"} <= set(entry), "catalog entry lacks a required key"
    assert entry["category"] == meta["EXTENSION_CATEGORY"]
    assert entry["build_dependencies"] == meta["EXTENSION_DEPENDS"].split() == ["PyTorch"]


def _ui_widgets() -> dict[str, ET.Element]:
    tree = ET.parse(UI)
    return {w.get("name"): w for w in tree.iter("widget")}


def _parameter_fields() -> dict[str, str]:
    """Field name -> annotation source of the @parameterNodeWrapper class in MedSR.py."""
    tree = ast.parse(_read(MODULE_PY))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id: ast.unparse(s.annotation) for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in MedSR.py")


def test_every_widget_the_code_uses_is_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", _read(MODULE_PY)))
    missing = sorted(used - set(_ui_widgets()))
    assert used and not missing, f"MedSR.py uses widgets missing from MedSR.ui: {missing}"


def _connectable(widget_class: str, annotation: str) -> bool:
    """Whether Slicer's parameter-node GUI connectors can bind this widget to this annotation."""
    if widget_class == "qMRMLNodeComboBox":
        return "vtkMRML" in annotation
    if widget_class in ("QComboBox", "ctkComboBox"):
        return "Choice(" in annotation
    if widget_class in ("QCheckBox", "ctkCheckBox"):
        return annotation == "bool"
    if widget_class == "QSpinBox":
        return annotation.startswith("Annotated[int") or annotation == "int"
    if widget_class in ("QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"):
        return "float" in annotation
    return False


def test_every_slicer_parameter_name_names_a_field_its_widget_can_show():
    fields = _parameter_fields()
    bound = {}
    for name, w in _ui_widgets().items():
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                bound[name] = (w.get("class"), p.findtext("string"))
    assert len(bound) >= 10, "expected the panel's controls to be bound to the parameter node"
    unknown = {w: f for w, (_, f) in bound.items() if f not in fields}
    assert not unknown, f"SlicerParameterName values that are not parameter-node fields: {unknown}"
    wrong = {w: (cls, fields[f]) for w, (cls, f) in bound.items() if not _connectable(cls, fields[f])}
    assert not wrong, f"widgets that cannot represent their parameter type: {wrong}"
    assert len({f for _, f in bound.values()}) == len(bound), "two widgets are bound to one parameter"


def test_node_selectors_get_the_scene():
    tree = ET.parse(UI)
    combos = {w.get("name") for w in tree.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    receivers = {c.findtext("receiver") for c in tree.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert combos and combos <= receivers, f"node selectors never given the scene: {sorted(combos - receivers)}"


def test_module_compiles_and_medsrlib_never_imports_qt(tmp_path):
    py_compile.compile(MODULE_PY, cfile=str(tmp_path / "MedSR.pyc"), doraise=True)
    for path in sorted(_python_files(os.path.join(MODULE, "MedSRLib"))):
        tree = ast.parse(_read(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in ("qt", "ctk", "PythonQt")]
            assert not bad, f"{os.path.relpath(path, ROOT)} imports {bad}: MedSRLib must run without Qt"
        assert "slicer.app" not in _read(path), f"{os.path.relpath(path, ROOT)} uses slicer.app"


def test_module_never_imports_torch_at_import_time():
    """MedSR.py must open before PyTorch and requirements.txt are installed: its top-level imports, run
    in a fresh interpreter, must load neither torch nor scipy."""
    tree = ast.parse(_read(MODULE_PY))
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [a.name for n in top if isinstance(n, ast.Import) for a in n.names] + \
              [n.module for n in top if isinstance(n, ast.ImportFrom)]
    assert all(m.split(".")[0] not in ("torch", "MedSRExtension") for m in modules), modules
    assert {m for m in modules if m.startswith("MedSRLib")} <= {"MedSRLib"}, modules
    lib_imports = sorted({a.name for n in top if isinstance(n, ast.ImportFrom) and n.module == "MedSRLib"
                          for a in n.names})
    assert lib_imports, "MedSR.py imports nothing from MedSRLib"
    code = (f"import sys; sys.path[:0] = [{ROOT!r}, {MODULE!r}]\n"
            + "".join(f"import MedSRLib.{name}\n" for name in lib_imports)
            + "assert 'torch' not in sys.modules, 'torch was imported'\n"
            # Slicer ships numpy and SimpleITK; scipy comes with requirements.txt, after the panel opened
            + "assert 'scipy' not in sys.modules, 'scipy was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing MedSRLib.{lib_imports} loads torch or scipy: {result.stderr[-500:]}"


def test_requirements_are_plain_pip_requirements_without_torch():
    lines = [line.split("#", 1)[0].strip()
             for line in _read(os.path.join(MODULE, "Resources", "requirements.txt")).splitlines()]
    reqs = [line for line in lines if line]
    assert reqs, "requirements.txt lists nothing"
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[\w,]+\])?\s*([<>=!~]=?\s*[\w.*]+\s*,?\s*)*", req), \
            f"not a requirement: {req}"
        assert not req.lower().startswith("torch"), "torch comes through the PyTorch extension, not requirements.txt"


@pytest.mark.parametrize("resource", ["UI/MedSR.ui", "requirements.txt", "Icons/MedSR.png"])
def test_resources_the_module_loads_exist(resource):
    assert os.path.isfile(os.path.join(MODULE, "Resources", resource))
