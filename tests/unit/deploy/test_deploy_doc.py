"""docs/deploy.md keeps its promise that every claim maps to a test: each test its table
names exists, each of its sections has a row, and the code layout it gives is the code's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from longhaul_deploy.image import REPO_ROOT

DOC = REPO_ROOT / "docs" / "deploy.md"
TABLE = "## What proves each claim"


def _text() -> str:
    return DOC.read_text()


def _rows() -> list[tuple[str, str, str]]:
    table = _text().split(TABLE, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("Section", "---"):
            section, claim, tests = cells
            rows.append((section, claim, tests))
    return rows


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_this_page_names_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", _text())
    assert len(named) > 50
    for path, name in named:
        assert (REPO_ROOT / path).is_file(), path
        assert name in _functions(REPO_ROOT / path), f"{path}::{name}"


def test_every_claim_row_names_a_test() -> None:
    rows = _rows()
    assert rows
    for section, claim, tests in rows:
        assert re.search(r"`tests/[\w/]+\.py::\w+`", tests), (section, claim)


def test_every_section_of_the_page_has_a_row() -> None:
    sections = re.findall(r"^## (.+)$", _text(), re.M)
    covered = {section for section, _, _ in _rows()}
    missing = [s for s in sections if s != TABLE.removeprefix("## ") and s not in covered]
    assert missing == []


def test_every_module_the_code_layout_names_exists() -> None:
    layout = _text().split("Code layout (`deploy/longhaul_deploy/`):", 1)[1].split("\n\n", 1)[0]
    modules = re.findall(r"`(\w+\.py)`", layout)
    assert len(modules) > 10
    package = REPO_ROOT / "deploy" / "longhaul_deploy"
    for module in modules:
        assert (package / module).is_file(), module
