"""``python -m ablate.report results/<run>``: the command line's ``report`` (:mod:`ablate.cli`), under this name."""

from ablate.cli import forward

raise SystemExit(forward("report", None, "python -m ablate.report"))
