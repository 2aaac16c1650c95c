"""``python -m ablate.report results/<run>``."""

from ablate.report import main

raise SystemExit(main())
