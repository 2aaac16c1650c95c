"""``python -m ablate.report results/<run>``: the command line's ``report``."""

from ablate.report import main

raise SystemExit(main())
