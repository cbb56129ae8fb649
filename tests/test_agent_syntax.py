"""The device agent runs on boards with Python 3.9 and only the standard library, numpy and an
engine: its source must parse with the 3.9 grammar, import nothing else, reach its own modules
by relative imports, and avoid the 3.10+ features the grammar does not show."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

AGENT = Path(__file__).resolve().parent.parent / "harness_agent"
SOURCES = sorted(AGENT.rglob("*.py"))
THIRD_PARTY = {"numpy", "MNN", "ncnn", "onnxruntime"}
# keyword arguments added in Python 3.10 to callables the agent might use
NEWER_KEYWORDS = {"zip": {"strict"}, "dataclass": {"slots", "kw_only", "match_args"}}


def _id(path: Path) -> str:
    return str(path.relative_to(AGENT.parent))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_agent_sources_found():
    assert AGENT / "__main__.py" in SOURCES and len(SOURCES) > 5


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_agent_parses_with_python_3_9_grammar(path):
    _tree(path)  # SyntaxError names the file, line and construct


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_agent_imports_stdlib_numpy_engines_and_itself_relatively(path):
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in THIRD_PARTY:
                bad.append(f"line {node.lineno}: import {name}")
    assert not bad, f"{_id(path)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_agent_avoids_python_3_10_runtime_features(path):
    tree = _tree(path)
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names) for n in tree.body)
    bad = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            annotations += [a.annotation for a in args.posonlyargs + args.args
                            + args.kwonlyargs + [args.vararg, args.kwarg] if a is not None]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for ann in annotations:
            if not postponed and ann is not None and any(
                    isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                    for n in ast.walk(ann)):
                bad.append(f"line {ann.lineno}: X | Y annotation without "
                           "`from __future__ import annotations`")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            for kw in node.keywords:
                if kw.arg in NEWER_KEYWORDS.get(name, ()):
                    bad.append(f"line {node.lineno}: {name}({kw.arg}=...) needs Python 3.10")
    assert not bad, f"{_id(path)}: " + "; ".join(bad)
