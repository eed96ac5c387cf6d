"""Which wheel PyPI has, per platform, for every dependency in setup.py (needs PyPI access).

    python scripts/check_platform_wheels.py                      # the README's platforms
    python scripts/check_platform_wheels.py --platform manylinux_2_17_aarch64 --skip decord

For each requirement (install_requires and every extra) and each platform tag, pip picks the wheel
`pip download --no-deps --only-binary=:all: --python-version 3.11 --platform TAG REQ` would fetch;
it is asked with `pip install --dry-run --report`, which reads the wheel's metadata from PyPI
instead of downloading it (torch alone is ~100 MB a platform). A platform stands for a system that
also takes older wheels: pip itself accepts older macOS versions for `macosx_14_0_arm64`, but takes
a `manylinux_2_28` tag literally, so the older glibc tags (`manylinux_2_27` ... `manylinux2014`)
are passed too.
Prints one tab-separated line per (platform, requirement): the wheel's file name, or "NO WHEEL";
exits 1 if any requirement has none.

Only direct dependencies are checked this way: pip evaluates environment markers for the machine
it runs on, not for `--platform`, so a resolution of the whole tree from here would pull this
machine's platform-specific dependencies. For the whole tree use a resolver that targets a
platform, e.g. `uv pip compile reqs.txt --python-platform aarch64-manylinux_2_28 --only-binary :all:`
(and MACOSX_DEPLOYMENT_TARGET=14.0 with `--python-platform aarch64-apple-darwin`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_14_0_arm64")
SETUP_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "setup.py")


def requirements_from_setup(path: str = SETUP_PY) -> dict[str, list[str]]:
    """{'install_requires': [...], 'extra:<name>': [...]} read from the setup() call's literals."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"
    )
    kwargs = {k.arg: k.value for k in call.keywords}
    out = {"install_requires": list(ast.literal_eval(kwargs["install_requires"]))}
    for name, reqs in ast.literal_eval(kwargs.get("extras_require", ast.Dict(keys=[], values=[]))).items():
        out[f"extra:{name}"] = list(reqs)
    return out


def requirement_name(req: str) -> str:
    """'apache-beam[gcp]==2.77.*' -> 'apache-beam'."""
    for i, c in enumerate(req):
        if not (c.isalnum() or c in "-_."):
            return req[:i]
    return req


def platform_tags(platform: str) -> list[str]:
    """The tags a system of `platform` takes: manylinux_2_28_aarch64 -> manylinux_2_28_aarch64,
    ..., manylinux_2_17_aarch64, manylinux2014_aarch64 (and 2010/1 on x86_64); others as given."""
    if not platform.startswith("manylinux_2_"):
        return [platform]
    glibc, arch = platform[len("manylinux_2_") :].split("_", 1)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(int(glibc), 4, -1)]
    legacy = {17: "manylinux2014"} if arch not in ("x86_64", "i686") else {
        17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"
    }
    return tags + [f"{name}_{arch}" for minor, name in legacy.items() if minor <= int(glibc)]


def wheel_for(req: str, platform: str, python: str = "3.11") -> str | None:
    """File name of the wheel pip would take for `req` on `platform`, or None."""
    platforms = [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory() as target:
        proc = subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                "--only-binary=:all:", *platforms, "--python-version", python,
                "--implementation", "cp", "--target", target, "--quiet", "--report", "-", req,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        return None
    install = json.loads(proc.stdout)["install"]
    return install[0]["download_info"]["url"].rsplit("/", 1)[-1] if install else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--platform", action="append", help=f"wheel platform tag (default: {PLATFORMS})")
    parser.add_argument("--skip", action="append", default=[], help="requirement name to leave out")
    parser.add_argument("--python-version", default="3.11")
    args = parser.parse_args(argv)
    missing = 0
    reqs = [r for group in requirements_from_setup().values() for r in group]
    for platform in args.platform or PLATFORMS:
        for req in reqs:
            if requirement_name(req) in args.skip:
                continue
            wheel = wheel_for(req, platform, args.python_version)
            missing += wheel is None
            print(f"{platform}\t{req}\t{wheel or 'NO WHEEL'}", flush=True)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
