"""The suite's own guard: a test that runs over the per-test limit fails with its name (and the suite
goes on), and every run ends with its slowest tests. CPUs differ between machines (bf16 emulated
where a CPU lacks it ran 56x slower than fp32), so a slowdown must show up as one named failure,
not as CI running out of time."""

import os
import subprocess
import sys
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_suite_is_configured_with_a_per_test_limit_and_its_slowest_tests():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        ini = tomllib.load(f)["tool"]["pytest"]["ini_options"]
    assert ini["timeout"] == 120 and ini["timeout_method"] == "signal"
    assert "--durations=15" in ini["addopts"].split()


def test_a_test_over_the_limit_fails_with_its_name_and_the_others_still_run(tmp_path):
    (tmp_path / "test_slow.py").write_text(
        "import time\n\n"
        "def test_stalls():\n    time.sleep(30)\n\n"
        "def test_after_it():\n    assert True\n"
    )
    # The project's own configuration (rootdir and ini), with the limit lowered to 1 s.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_slow.py"), "-c", os.path.join(REPO, "pyproject.toml"),
         "--rootdir", str(tmp_path), "-o", "timeout=1", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert "FAILED test_slow.py::test_stalls - Failed: Timeout (>1.0s) from pytest-timeout." in out, out[-3000:]
    assert "1 failed, 1 passed" in out
    assert "slowest 15 durations" in out
