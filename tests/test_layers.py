"""The code's layering: import-linter's contracts in pyproject.toml (the engine imports nothing of the
service or the report; the service's rooms import only the rooms below them, so the store imports nothing
of the HTTP layer; no import cycles), and the API process never loads JAX."""

import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parents[1]


def test_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def test_no_service_module_loads_jax():
    """Every module of the service imported, the app built and its OpenAPI document rendered, as the API
    process does: JAX stays out (the operations' worker functions import the engine inside their bodies)."""
    code = """
import importlib, pkgutil, sys
import service
for module in pkgutil.walk_packages(service.__path__, "service."):
    importlib.import_module(module.name)
from service.http.app import create_app
create_app().openapi()
print(sorted(m for m in sys.modules if m == "jax" or m.startswith(("jax.", "jaxlib"))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
