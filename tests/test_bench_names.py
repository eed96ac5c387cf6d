"""No bench script is named like a module it could shadow: tests put bench/ on sys.path to import
the benches, and processes they spawn (Dask workers, Beam's) inherit that path, so a bench/dask.py
made `import dask` fail in every Dask worker of the full suite ('dask' is not a package)."""

import importlib.metadata
import os
import sys

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


def test_no_bench_script_shadows_an_installed_or_standard_module():
    names = {f[:-3] for f in os.listdir(BENCH) if f.endswith(".py")}
    installed = set(importlib.metadata.packages_distributions())  # top-level names of what pip installed
    assert "dask" in installed and "torch" in installed  # the list is real
    assert sorted(names & (installed | set(sys.stdlib_module_names))) == []
