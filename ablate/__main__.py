"""``python -m ablate [COMMAND] [flags]``: the command line, as ``python run_ablation.py`` (see ``--help``)."""

from ablate.cli import main

raise SystemExit(main())
