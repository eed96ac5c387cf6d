"""`reelbeam weights check PATH...`: which model each weights file or folder holds, before a run
needs it (docs/weights.md).

Each PATH is a PyTorch weights file, a CLIP folder written by `save_pretrained`, a ModelScope model
folder (its pytorch_model.pt), local or any fsspec URL (`gs://`, `s3://`), or a Hugging Face id
already in the local cache; nothing is downloaded and no weights are read (only tensor names and
shapes, and the bytes for the sha256). One line per PATH, in order: on stdout the architecture, the
number of tensors, the sha256 of the file (of a folder's weights file) and the flag that takes it;
on stderr one line saying what is wrong. Exit status 0 when every PATH was recognised, else 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reelbeam weights", description="Model weights: where they come from (docs/weights.md) "
                     "and whether a file is what a flag expects.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = sub.add_parser("check", help="say which model each weights file or folder holds",
                           description=__doc__.split("\n\n", 1)[1].strip())
    check.add_argument("paths", nargs="+", metavar="PATH",
                       help="a weights file or folder (local or fsspec URL) or a cached Hugging Face id")
    return parser


def line(found) -> str:
    """One recognised source as printed: `SOURCE: ARCHITECTURE, N tensors, sha256 HEX (for FLAG)`."""
    weights = "" if found.weights == found.source else f" of {found.weights.rstrip('/').rsplit('/', 1)[-1]}"
    flag = f"for {found.flag}" if found.flag else "no flag takes it"
    return f"{found.source}: {found.architecture}, {found.tensors} tensors, sha256{weights} {found.sha256} ({flag})"


def check_main(paths: Sequence[str]) -> int:
    from reelbeam.models.checkpoints import WEIGHTS_HELP, CheckpointError
    from reelbeam.models.recognition import recognise

    failed = 0
    for path in paths:
        try:
            found = recognise(path)
        except CheckpointError as e:
            message = str(e)
            if path not in message:
                message = f"{path}: {message}"
            print(f"reelbeam weights check: error: {message}; {WEIGHTS_HELP}", file=sys.stderr)
            failed += 1
            continue
        print(line(found), flush=True)
    return 2 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`reelbeam weights` (module doc). Returns the exit status."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help (0) or a usage error, already printed in one line (2)
        return int(e.code or 0)
    return check_main(args.paths)
