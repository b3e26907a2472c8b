"""The house rules, checked on the source: dependencies point down, one owner per piece of plumbing,
no module over 500 lines, no function over 60. Reads the files (``ast``); imports nothing."""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipa_video"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60

# What each part of the package may import (docs/design.md, "Module map"). Lower layers first:
# errors <- atomic <- checkpoint_io; config; data / models; synthetic; uda; evaluation; engine; adapt, demo; cli.
ALLOWED = {
    "errors": set(),
    "atomic": {"errors"},
    "checkpoint_io": {"errors", "atomic"},
    "config": {"errors", "atomic", "config_relations"},
    "config_relations": {"errors", "data"},  # the class-set table, to name the valid class sets
    "data": {"errors", "atomic"},
    "models": {"errors", "atomic", "checkpoint_io", "config"},
    "synthetic": {"errors", "atomic", "data"},
    "uda": {"errors", "atomic", "config", "data", "models"},
    "evaluation": {"errors", "atomic", "config", "data", "models"},
    "engine": {"errors", "atomic", "checkpoint_io", "config", "data", "models", "uda", "evaluation"},
    "adapt": {"errors", "atomic", "config", "data", "engine", "uda"},
    "demo": {"errors", "atomic", "config", "data", "engine", "evaluation", "synthetic"},
    "cli": {"errors", "atomic", "checkpoint_io", "config", "engine", "evaluation", "adapt", "demo"},
}
# One owner per piece of plumbing: (pattern in the code, the only file allowed to hold it).
OWNERS = [
    (r"\btorch\.load\(", "checkpoint_io.py"),
    (r"\btorch\.save\(", "checkpoint_io.py"),
    (r"torch\.distributed|torch_dist\.", "engine/dist.py"),
    (r"\bos\.replace\(", "atomic.py"),
    (r"\bmkstemp\(", "atomic.py"),
]


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, path.read_text(), rel.parts[0].removesuffix(".py")


def _imported_parts(tree: ast.AST) -> set[str]:
    parts = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        parts |= {n.split(".")[1] for n in names if n.startswith("pipa_video.")}
    return parts


def test_dependencies_point_down():
    wrong = []
    for rel, text, part in _modules():
        if part == "__init__":
            continue
        assert part in ALLOWED, f"{rel}: a new part of the package; give it a place in ALLOWED (and docs/design.md)"
        upward = _imported_parts(ast.parse(text)) - ALLOWED[part] - {part}
        wrong += [f"{rel} imports pipa_video.{u}" for u in sorted(upward)]
    assert not wrong, "imports against the house rule:\n" + "\n".join(wrong)


def test_the_rule_catches_an_upward_import():
    tree = ast.parse("from pipa_video.engine.checkpoint import load_checkpoint\nimport pipa_video.uda.step\n")
    assert _imported_parts(tree) - ALLOWED["evaluation"] == {"engine", "uda"}


@pytest.mark.parametrize("pattern, owner", OWNERS, ids=[o[0] for o in OWNERS])
def test_one_owner_per_piece_of_plumbing(pattern, owner):
    holders = [str(rel) for rel, text, _ in _modules() if str(rel) != owner and _in_code(pattern, text)]
    assert not holders, f"{pattern} outside {owner}: {holders}"


def test_the_owner_check_reads_code_not_prose():
    assert _in_code(r"\bos\.replace\(", "import os\nos.replace(a, b)\n")
    assert not _in_code(r"\bos\.replace\(", '"""Renamed by os.replace(tmp, path)."""\n# os.replace(a, b)\n')


def _in_code(pattern: str, text: str) -> bool:
    """``pattern`` in the code of ``text``: its comments and strings (docstrings) left out."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    code = " ".join(t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.STRING))
    return re.search(pattern, re.sub(r"\s*([.(])\s*", r"\1", code)) is not None


def test_no_module_over_500_lines():
    long = [f"{rel}: {text.count(chr(10))} lines" for rel, text, _ in _modules() if text.count("\n") > MAX_MODULE_LINES]
    assert not long, long


def test_no_function_over_60_lines():
    long = []
    for rel, text, _ in _modules():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long
