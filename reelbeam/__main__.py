"""`python -m reelbeam` is the same as the `reelbeam` console script."""

import sys

from reelbeam.pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
