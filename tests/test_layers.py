"""The package's layers point one way: schemas <- models <- transforms <- stages <- pipelines <- cli
(`reelbeam.pipelines.cli`), with the runners beside the pipelines (a pipeline may use a runner's
helpers, a runner nothing of the pipelines). Read from the source (every import, also those inside
functions), so a lazy import cannot hide an upward one. import-linter is not installed here; this
walks the AST instead."""

import ast
import pathlib

import reelbeam

ROOT = pathlib.Path(reelbeam.__file__).parent
ORDER = ("schemas", "models", "transforms", "stages", "pipelines", "cli")


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reelbeam" or len(parts) < 2:
        return None
    if parts[1:3] == ["pipelines", "cli"]:
        return "cli"
    return parts[1] if parts[1] in (*ORDER, "runners") else None


def allowed(me: str, other: str) -> bool:
    if me == "runners":
        return ORDER.index(other) < ORDER.index("pipelines") if other != "runners" else True
    if other == "runners":
        return ORDER.index(me) >= ORDER.index("pipelines")
    return ORDER.index(other) <= ORDER.index(me)


def upward_imports() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("reelbeam", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        me = layer(module)
        if me is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                other = layer(name)
                if other is not None and not allowed(me, other):
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} ({me}) imports {name} ({other})")
    return found


def test_no_layer_imports_a_layer_above_it():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import():
    assert not allowed("transforms", "stages")
    assert not allowed("models", "transforms")
    assert not allowed("runners", "pipelines")
    assert not allowed("pipelines", "cli")
    assert allowed("pipelines", "runners") and allowed("stages", "schemas") and allowed("cli", "pipelines")
