"""``ablate.core.schema`` owns the tables' vocabulary: no other module spells a ``kind``, ``phase``, ``status`` or
``evidence`` value, nor a verdict's ``kind``, as a string. Walked with ``ast``: a row kind or status (``"baseline"``,
``"completed"``, …) counts wherever it stands as a whole string; a phase, evidence or verdict value (words that
also name designs and settings: ``"ablation"``, ``"confirm"``) where it is compared with, passed as or keyed by
one of those fields. Docstrings and messages are free."""

from __future__ import annotations

import ast
from pathlib import Path

from ablate.core.schema import EvidenceKind, Kind, Phase, Status, VerdictKind

PACKAGE = Path(__file__).resolve().parent.parent / "ablate"
FIELDS = {"kind", "phase", "status", "evidence", "group"}
VALUES = {str(v) for enum in (Kind, Phase, Status, EvidenceKind, VerdictKind) for v in enum}
ALWAYS = {str(v) for enum in (Kind, Status) for v in enum}  # words that only ever name these values


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def spelled(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of each vocabulary string the module spells out."""
    found = []
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if _literal(node) in ALWAYS and id(node) not in docstrings and not isinstance(node, ast.JoinedStr):
            found.append((node.lineno, _literal(node)))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                elements = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                for element in elements:
                    value = _literal(element)
                    others = " ".join(ast.unparse(o) for o in operands if o is not operand)
                    if value in VALUES - ALWAYS and any(f in others for f in FIELDS):
                        found.append((node.lineno, value))
        elif isinstance(node, ast.keyword) and node.arg in FIELDS and _literal(node.value) in VALUES - ALWAYS:
            found.append((node.value.lineno, _literal(node.value)))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if _literal(key) in FIELDS and _literal(value) in VALUES - ALWAYS:
                    found.append((value.lineno, _literal(value)))
    return found


def test_no_module_outside_schema_spells_the_vocabulary():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {value!r}"
                 for path in sorted(PACKAGE.rglob("*.py")) if path.name != "schema.py"
                 for line, value in spelled(ast.parse(path.read_text(encoding="utf-8")))]
    assert not offenders, "use ablate.core.schema's Kind / Phase / Status / EvidenceKind:\n" + "\n".join(offenders)


def test_the_walk_finds_each_way_of_spelling_a_value():
    source = '''
df[df["status"] == "completed"]
x = {"kind": "candidate"}
f(phase="confirm")
counts["pruned"]
row.get("status") != "failed"
group == "confirm"
"""A docstring that says completed."""
f"{n} failed"
"design" if a else "search"
meta["design"] == "ablation"
'''
    found = sorted(v for _, v in spelled(ast.parse(source)))
    assert found == ["candidate", "completed", "confirm", "confirm", "failed", "pruned"], found
