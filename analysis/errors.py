"""The expected failures: bad settings, checkpoints that cannot be read as asked, a backend
that cannot compute. The CLI prints any of them as one line (what, where, what was expected);
anything else is a bug and keeps its traceback."""


class AnalysisError(Exception):
    """Base of every error a user can cause and fix; its message is the whole story."""
