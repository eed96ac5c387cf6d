"""`python -m reelbeam.report OUTPUT [--out DIR]`."""

import sys

from reelbeam.report import main

if __name__ == "__main__":
    sys.exit(main())
