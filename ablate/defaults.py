"""A run's defaults, in one place: the command line, ``RunSettings`` (the Python API) and ``--resume`` of a run
whose run.json lacks a key all take them from here."""

TRIALS = 12  # candidate configs of the design (or the search)
CONFIRM = 3  # the best candidates retrained under fresh seeds
SEEDS = 3  # fresh training seeds per confirmed candidate and per baseline
