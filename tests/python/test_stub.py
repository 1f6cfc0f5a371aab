"""The type stub ``picolm/_picolm.pyi`` against the built module.

Every public class, method, property and attribute of ``picolm._picolm`` must be declared in the stub with the
same kind (method or attribute), the same parameter names, kinds and defaults (``inspect.signature`` of the
runtime objects, which PyO3 gives a ``__text_signature__``), and the stop-reason literals must be the names the
core reports (``STOP_REASONS``, ``AGENT_STOPS``). The defaults Python shows must be picolm-core's
(``_picolm._defaults()``). ``test_the_check_finds_drift`` shows that the check fails on a wrong stub.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from picolm import _picolm

STUB = Path(__file__).resolve().parents[2] / "bindings" / "python" / "python" / "picolm" / "_picolm.pyi"

# Dunder methods that are part of the API (others come from `object` or PyO3's plumbing).
API_DUNDERS = {"__iter__", "__next__", "__enter__", "__exit__"}
_KIND = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.KEYWORD_ONLY: "keyword-only",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
}
_NO_DEFAULT = "<required>"


def _is_overload(f: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in f.decorator_list)


def _is_property(f: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in f.decorator_list)


def _stub_params(f: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    """(name, kind, default) of a stub function's parameters, `self` excluded."""
    a = f.args
    out: list[tuple[str, str, Any]] = []
    positional = a.posonlyargs + a.args
    defaults = [_NO_DEFAULT] * (len(positional) - len(a.defaults)) + [ast.literal_eval(d) for d in a.defaults]
    for i, (p, d) in enumerate(zip(positional, defaults)):
        kind = "positional-only" if i < len(a.posonlyargs) else "positional"
        out.append((p.arg, kind, d))
    if a.vararg:
        out.append((a.vararg.arg, "*args", _NO_DEFAULT))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((p.arg, "keyword-only", _NO_DEFAULT if d is None else ast.literal_eval(d)))
    if a.kwarg:
        out.append((a.kwarg.arg, "**kwargs", _NO_DEFAULT))
    return [p for p in out if p[0] != "self"]


def _runtime_params(obj: Any) -> list[tuple[str, str, Any]]:
    sig = inspect.signature(obj)
    out = []
    for p in sig.parameters.values():
        default = _NO_DEFAULT if p.default is inspect.Parameter.empty else p.default
        out.append((p.name, _KIND[p.kind], default))
    return [p for p in out if p[0] != "self"]


def _literal_names(node: ast.expr) -> set[str]:
    """The strings of a ``Literal[...]`` annotation."""
    assert isinstance(node, ast.Subscript) and ast.unparse(node.value) == "Literal", ast.unparse(node)
    elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return {ast.literal_eval(e) for e in elts}


def stub_problems(source: str) -> list[str]:
    """Every difference between the stub `source` and the runtime module."""
    tree = ast.parse(source)
    problems: list[str] = []
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}
    module_names = {
        n.target.id
        for n in tree.body
        if isinstance(n, ast.AnnAssign)
        and isinstance(n.target, ast.Name)
        and (not n.target.id.startswith("_") or n.target.id == "__version__")
    }
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
    aliases = {
        n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
    }

    runtime = {n: getattr(_picolm, n) for n in dir(_picolm) if not n.startswith("_") or n == "__version__"}
    rt_classes = {n for n, v in runtime.items() if isinstance(v, type)}
    rt_functions = {n for n, v in runtime.items() if callable(v) and not isinstance(v, type)}
    rt_values = set(runtime) - rt_classes - rt_functions
    for what, stub_set, rt_set in (
        ("class", set(classes), rt_classes),
        ("function", functions, rt_functions),
        ("module attribute", module_names, rt_values),
    ):
        for n in sorted(rt_set - stub_set):
            problems.append(f"{what} {n} is missing from the stub")
        for n in sorted(stub_set - rt_set):
            problems.append(f"{what} {n} is in the stub but not in the module")

    for cname in sorted(set(classes) & rt_classes):
        cls = getattr(_picolm, cname)
        node = classes[cname]
        stub_methods: dict[str, ast.FunctionDef] = {}
        stub_attrs: set[str] = set()
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                if _is_property(item):
                    stub_attrs.add(item.name)
                elif not _is_overload(item):
                    stub_methods[item.name] = item
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                stub_attrs.add(item.target.id)
        # The constructor: PyO3's `#[new]` gives the class a signature; the stub declares it as `__init__`.
        stub_init = stub_methods.pop("__init__", None)
        has_new = cls.__text_signature__ is not None
        if has_new != (stub_init is not None):
            problems.append(f"constructor of {cname}: in the module {has_new}, in the stub {stub_init is not None}")
        rt_methods, rt_attrs = set(), set()
        for name, value in vars(cls).items():
            if name.startswith("_") and name not in API_DUNDERS:
                continue
            if inspect.isdatadescriptor(value):
                rt_attrs.add(name)
            else:
                rt_methods.add(name)
        for kind, stub_set, rt_set in (("method", set(stub_methods), rt_methods), ("attribute", stub_attrs, rt_attrs)):
            for n in sorted(rt_set - stub_set):
                problems.append(f"{kind} {cname}.{n} is missing from the stub (or declared as another kind)")
            for n in sorted(stub_set - rt_set):
                problems.append(f"{kind} {cname}.{n} is in the stub but not in the module (or of another kind)")
        checks = [(n, getattr(cls, n), stub_methods[n]) for n in sorted(set(stub_methods) & rt_methods)]
        if stub_init is not None and has_new:
            checks.append(("__init__", cls, stub_init))
        for mname, obj, stub_def in checks:
            try:
                rt = _runtime_params(obj)
            except ValueError:
                continue  # no __text_signature__ (PyO3's own slots such as __iter__)
            st = _stub_params(stub_def)
            if rt != st:
                problems.append(f"signature of {cname}.{mname}: runtime {rt} != stub {st}")

    stop_reason = aliases.get("_StopReason")
    if stop_reason is None:
        problems.append("the stub has no _StopReason alias")
    elif _literal_names(stop_reason) != set(_picolm.STOP_REASONS):
        problems.append(f"_StopReason {sorted(_literal_names(stop_reason))} != {sorted(_picolm.STOP_REASONS)}")
    agent = classes.get("AgentResult")
    stop = next(
        (i.annotation for i in agent.body if isinstance(i, ast.AnnAssign) and ast.unparse(i.target) == "stop"), None
    ) if agent else None
    if isinstance(stop, ast.Name):
        stop = aliases.get(stop.id)
    if stop is None or _literal_names(stop) != set(_picolm.AGENT_STOPS):
        problems.append(f"AgentResult.stop is not Literal of {sorted(_picolm.AGENT_STOPS)}")
    return problems


def test_the_stub_matches_the_module():
    assert stub_problems(STUB.read_text()) == []


@pytest.mark.parametrize(
    "old, new, found",
    [
        # A method missing.
        ("    def detokenize_bytes(", "    def _gone(", "method Model.detokenize_bytes is missing"),
        # A parameter renamed.
        ("add_generation_prompt: bool = True", "add_prompt: bool = True", "signature of Model.apply_chat_template"),
        # A default changed.
        ("max_iterations: int = 5,", "max_iterations: int = 6,", "signature of Model.run_tools"),
        # A stop reason missing.
        ('"context_full", "cancelled",', '"context_full",', "_StopReason"),
        # A property declared as a method.
        ("    @property\n    def cached_tokens", "    def cached_tokens", "Model.cached_tokens"),
    ],
)
def test_the_check_finds_drift(old, new, found):
    source = STUB.read_text()
    assert old in source, f"the mutation {old!r} no longer applies to the stub"
    problems = stub_problems(source.replace(old, new, 1))
    assert any(found in p for p in problems), problems


@pytest.mark.parametrize(
    "obj, defaults",
    [
        (_picolm.Model, "Model"),
        (_picolm.Model.generate, "generate"),
        (_picolm.Model.generate_full, "generate"),
        (_picolm.Model.chat, "generate"),
        (_picolm.Model.run_tools, "run_tools"),
    ],
)
def test_shown_defaults_are_the_cores(obj, defaults):
    core = _picolm._defaults()[defaults]
    shown = {p.name: p.default for p in inspect.signature(obj).parameters.values() if p.name in core}
    assert shown == core
