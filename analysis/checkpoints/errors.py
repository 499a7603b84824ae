"""The one error every checkpoint reader raises: what cannot be read, and where; and which
failures are temporary (never a verdict about the checkpoint, so never cached)."""

from ..errors import AnalysisError


class CheckpointError(AnalysisError, ValueError):
    """A checkpoint folder or file that cannot be read as asked."""


class TransientError(CheckpointError):
    """A read that failed for a reason outside the checkpoint (offline mode, network, timeout):
    retrying may succeed, so nothing may be concluded or cached from it."""


def is_transient(e: BaseException) -> bool:
    """Whether a failed read says nothing about the checkpoint's bytes. Network errors reach
    us as OSError (requests' and huggingface_hub's errors, sockets, timeouts); a file that is
    not there is a fact about the checkpoint."""
    if isinstance(e, CheckpointError):
        return isinstance(e, TransientError)
    return isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError))
