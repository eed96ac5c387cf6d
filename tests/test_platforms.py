"""The README's platform table names every dependency setup.py installs, and nothing else, so a
dependency added or dropped is checked on every platform (scripts/check_platform_wheels.py)."""

import importlib.util
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _script():
    spec = importlib.util.spec_from_file_location(
        "check_platform_wheels", os.path.join(ROOT, "scripts", "check_platform_wheels.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_section(title):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_the_readme_platform_table_lists_exactly_the_installed_dependencies():
    script = _script()
    wanted = {script.requirement_name(r) for r in script.requirements_from_setup()["install_requires"]}
    section = _readme_section("Supported platforms")
    table = section[section.index("| dependency |") :]
    listed = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        listed.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    assert listed == wanted


def test_platform_tags_stand_for_a_system_that_takes_older_wheels():
    script = _script()
    tags = script.platform_tags("manylinux_2_28_aarch64")
    assert tags[0] == "manylinux_2_28_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags and "manylinux2010_aarch64" not in tags
    assert "manylinux2010_x86_64" in script.platform_tags("manylinux_2_28_x86_64")
    assert script.platform_tags("macosx_14_0_arm64") == ["macosx_14_0_arm64"]  # pip expands these
    assert script.requirement_name("apache-beam[gcp]==2.77.*") == "apache-beam"
