#!/usr/bin/env python
"""Entry point: ``python run_ablation.py --space qlblock`` (see ``python run_ablation.py --help``; the same command
line as ``python -m ablate``)."""

import sys

from ablate.cli import main

if __name__ == "__main__":
    sys.exit(main())
