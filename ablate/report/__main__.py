"""``python -m ablate.report``: the report is the command line's ``python -m ablate report results/<run>`` (ablate.cli
sits above this package); this entry says so in one line, exit code 2."""

from ablate.core.errors import moved_entry

moved_entry("ablate.report", "report")
