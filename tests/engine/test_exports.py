"""engine/__init__.py names each lazy export twice: in _EXPORTS (run time) and in its
TYPE_CHECKING imports (the type checker's view); the two lists must agree."""

import ast
import importlib
from pathlib import Path

import engine


def test_type_checking_imports_match_exports():
    tree = ast.parse(Path(engine.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    imported = {alias.asname or alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert imported == {name: f"engine.{module}" for name, module in engine._EXPORTS.items()}


def test_every_export_loads():
    for name, module in engine._EXPORTS.items():
        assert getattr(engine, name) is getattr(importlib.import_module(f"engine.{module}"), name)
