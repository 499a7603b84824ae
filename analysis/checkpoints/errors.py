"""The one error every checkpoint reader raises: what cannot be read, and where."""


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be read as asked."""
