"""User-facing errors: one line that says what is wrong and how to fix it (the CLI exits 2 on them)."""


class UsageError(Exception):
    """Bad input from the user (flag, file, directory). Its message is shown as is, without a traceback."""
