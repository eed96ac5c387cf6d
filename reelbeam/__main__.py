"""`python -m reelbeam` is the same as the `reelbeam` console script."""

from reelbeam.pipelines.cli import entry

if __name__ == "__main__":
    entry()
