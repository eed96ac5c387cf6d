"""docs/architecture.md's package layout and decode-pass consumers are generated from the code."""

import os

from reelbeam.pipelines import code_docs

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "architecture.md")


def _doc() -> str:
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_the_package_layout_in_the_docs_is_the_code_s():
    assert code_docs.section(_doc(), code_docs.LAYOUT_MARKERS) == code_docs.layout_markdown(), \
        "regenerate: .venv/bin/python scripts/update_docs.py"


def test_the_decode_pass_consumers_in_the_docs_are_the_code_s():
    assert code_docs.section(_doc(), code_docs.CONSUMER_MARKERS) == code_docs.consumers_markdown(), \
        "regenerate: .venv/bin/python scripts/update_docs.py"


def test_every_module_and_every_consumer_is_listed():
    layout = code_docs.layout_markdown()
    for root, _dirs, files in os.walk(code_docs.PACKAGE):
        for name in files:
            if name.endswith(".py") and name != "__init__.py":
                assert f"  {name} " in layout, name
    names = {name for name, _module, _doc in code_docs.consumers()}
    # The consumers the issue found missing from the hand-drawn figure, and the frame index every run has.
    assert {"FrameDifferenceConsumer", "ClipFrameConsumer", "FrameIndexConsumer", "MotionMapConsumer"} <= names
    assert all(doc for _name, _module, doc in code_docs.consumers()), "every consumer has a docstring"


def test_a_new_module_changes_the_generated_layout(tmp_path, monkeypatch):
    pkg = tmp_path / "reelbeam"
    (pkg / "extra").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Top."""\n')
    (pkg / "extra" / "__init__.py").write_text('"""Extra things."""\n')
    (pkg / "extra" / "ocr.py").write_text(
        '"""Text in keyframes. More."""\n\nclass OcrConsumer:\n    """Reads text.\n\n    Long."""\n'
        "    def consume(self, frame):\n        pass\n")
    monkeypatch.setattr(code_docs, "PACKAGE", str(pkg))
    assert "reelbeam/extra/  Extra things." in code_docs.layout_markdown()
    assert "  ocr.py                  Text in keyframes." in code_docs.layout_markdown()
    assert code_docs.consumers() == [("OcrConsumer", "reelbeam/extra/ocr.py", "Reads text.")]
