"""The module's parameter node, checked the way Slicer's parameterNodeWrapper uses it.

When the widget opens, ``parameterNodeWrapper`` writes every field's default into a new
``vtkMRMLScriptedModuleNode`` (Base/Python/slicer/parameterNodeWrapper/wrapper.py), through the
serializer chosen for its annotation (serializers.py): a node-typed field defaults to None and
validates with IsInstance; a Union is written by the first member whose serializer can take the
value's type, so None needs a None member (``_findBestSerializer`` raises TypeError otherwise, and
the panel never opens); ``Choice`` and ``WithinRange`` validate every write, the default included.
This test applies those rules to every ``@parameterNodeWrapper`` class of MedSR.py, on a real
scripted-module node of a slicer-core scene, and round-trips each field.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import typing

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from MedSRLib import choices, panel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_PY = os.path.join(ROOT, "MedSRModule", "MedSR.py")


class Choice:
    """The rule of slicer.parameterNodeWrapper.Choice: the value must be one of the choices."""

    def __init__(self, options):
        self.options = list(options)

    def validate(self, value):
        if value not in self.options:
            raise ValueError(f"{value!r} is not one of {self.options}")


class WithinRange:
    """The rule of slicer.parameterNodeWrapper.WithinRange: minimum <= value <= maximum."""

    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value):
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{value!r} is outside [{self.minimum}, {self.maximum}]")


@dataclasses.dataclass
class Field:
    name: str
    base: object
    validators: list
    default: object
    has_default: bool


def _namespace() -> dict:
    ns = {"Annotated": typing.Annotated, "Optional": typing.Optional, "Union": typing.Union,
          "Choice": Choice, "WithinRange": WithinRange, "medsrChoices": choices}
    ns.update({name: getattr(slicer, name) for name in dir(slicer) if name.startswith("vtkMRML")})
    return ns


def wrapper_classes(source: str) -> dict[str, list[Field]]:
    """The fields of every ``@parameterNodeWrapper`` class in ``source``."""
    ns = _namespace()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper"
                                                  for d in node.decorator_list):
            fields = []
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign):
                    annotation = eval(compile(ast.Expression(stmt.annotation), MODULE_PY, "eval"), ns)
                    base, validators = annotation, []
                    if typing.get_origin(annotation) is typing.Annotated:
                        base, *validators = typing.get_args(annotation)
                    default = eval(compile(ast.Expression(stmt.value), MODULE_PY, "eval"), ns) if stmt.value else None
                    fields.append(Field(stmt.target.id, base, validators, default, stmt.value is not None))
            found[node.name] = fields
    return found


def _is_node_type(t) -> bool:
    return isinstance(t, type) and issubclass(t, slicer.vtkMRMLNode)


def _members(t) -> tuple:
    return typing.get_args(t) if typing.get_origin(t) is typing.Union else (t,)


def type_default(t):
    """The default Slicer's serializers give a field without an explicit one."""
    members = _members(t)
    if len(members) == 2 and members[1] is type(None):
        return None  # Optional[X]
    first = members[0]
    if _is_node_type(first) or first is type(None):
        return None
    return {str: "", float: 0.0, int: 0, bool: False}[first]


def write(node, field: Field, value) -> None:
    """Write ``value`` as the serializers do, raising what they raise."""
    for validator in field.validators:
        validator.validate(value)
    errors = []
    for member in _members(field.base):
        if member is type(None):
            if value is None:
                node.SetParameter(field.name, "None")
                return
            continue
        if _is_node_type(member):
            if value is not None and isinstance(value, slicer.vtkMRMLNode):
                if not isinstance(value, member):
                    errors.append(TypeError(f"{value.GetClassName()} is not a {member.__name__}"))
                    continue
            elif not (value is None and len(_members(field.base)) == 1):
                continue  # a NodeSerializer inside a Union cannot take None (canSerialize(NoneType) is False)
            node.SetParameter(field.name, "")
            node.SetNodeReferenceID(field.name, value.GetID() if value is not None else None)
            return
        if isinstance(value, member) and not (member is int and isinstance(value, bool)):
            node.SetParameter(field.name, str(value))
            return
        if member is float and isinstance(value, int) and not isinstance(value, bool):
            node.SetParameter(field.name, str(value))
            return
    if errors:
        raise errors[0]
    raise TypeError(f"Unable to write value '{value}' of type '{type(value)}'")


def read(node, field: Field):
    members = _members(field.base)
    if any(_is_node_type(m) for m in members):
        if node.GetParameter(field.name) == "None":
            return None
        return node.GetNodeReference(field.name)
    text = node.GetParameter(field.name)
    base = members[0]
    return {str: str, float: float, int: int, bool: lambda s: s == "True"}[base](text)


def samples(field: Field, scene) -> list:
    """Values a user can set: every choice, the ends of a range, a node of each allowed class."""
    values = []
    for v in field.validators:
        if isinstance(v, Choice):
            values += v.options
        elif isinstance(v, WithinRange):
            values += [v.minimum, v.maximum]
    for member in _members(field.base):
        if _is_node_type(member):
            values.append(scene.AddNewNodeByClass(member.__name__))
        elif member is type(None):
            values.append(None)
        elif not field.validators:
            values += {str: ["edsr", ""], bool: [True, False], int: [0, 3], float: [1.5]}[member]
    return values


def _default(field: Field):
    return field.default if field.has_default else type_default(field.base)


def test_medsr_py_has_its_parameter_node():
    classes = wrapper_classes(open(MODULE_PY, encoding="utf-8").read())
    assert "MedSRParameterNode" in classes and len(classes["MedSRParameterNode"]) >= 10


def test_every_default_is_writable_and_every_field_round_trips(mrml_scene):
    classes = wrapper_classes(open(MODULE_PY, encoding="utf-8").read())
    for class_name, fields in classes.items():
        node = mrml_scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", class_name)
        for field in fields:
            default = _default(field)
            write(node, field, default)  # what the wrapper does when the panel opens
            assert read(node, field) == default, f"{class_name}.{field.name}: default {default!r} does not round-trip"
            for value in samples(field, mrml_scene):
                write(node, field, value)
                got = read(node, field)
                assert got is value if isinstance(value, slicer.vtkMRMLNode) or value is None else got == value, \
                    f"{class_name}.{field.name}: {value!r} read back as {got!r}"


def test_the_checker_catches_the_bug_that_kept_the_panel_closed(mrml_scene):
    """A Union of node types without None (the old referenceSegmentation) cannot take its default."""
    broken = wrapper_classes(
        "@parameterNodeWrapper\nclass Broken:\n"
        "    seg: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]\n"
        "    mode: Annotated[str, Choice(['a', 'b'])] = 'c'\n")["Broken"]
    node = mrml_scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "Broken")
    with pytest.raises(TypeError, match="Unable to write value 'None'"):
        write(node, broken[0], _default(broken[0]))
    with pytest.raises(ValueError):
        write(node, broken[1], _default(broken[1]))


def test_panel_parameters_mirror_the_parameter_node():
    """The browser UI and the tests use PanelParameters; Slicer uses the parameter node: same fields."""
    fields = wrapper_classes(open(MODULE_PY, encoding="utf-8").read())["MedSRParameterNode"]
    node_defaults = {f.name: _default(f) for f in fields}
    panel_defaults = {f.name: f.default for f in dataclasses.fields(panel.PanelParameters)}
    assert node_defaults == panel_defaults
