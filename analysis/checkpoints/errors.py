"""The one error every checkpoint reader raises: what cannot be read, and where; and which
failures are temporary (never a verdict about the checkpoint, so never cached)."""

import importlib
import socket
from functools import cache

from ..errors import AnalysisError


class CheckpointError(AnalysisError, ValueError):
    """A checkpoint folder or file that cannot be read as asked."""


class TransientError(CheckpointError):
    """A read that failed for a reason outside the checkpoint (offline mode, network, timeout):
    retrying may succeed, so nothing may be concluded or cached from it."""


# Network-level failures of the HTTP clients in use, where installed: huggingface_hub's
# (httpx2), fsspec's HTTP file system (aiohttp), and requests. Their HTTP status errors are
# judged by status below; a missing repo, revision or file (404), or no access (401, 403),
# is a fact.
_NETWORK = (("httpx2", "TransportError"), ("httpx", "TransportError"), ("aiohttp", "ClientConnectionError"),
            ("aiohttp", "ClientPayloadError"), ("requests.exceptions", "ConnectionError"),
            ("requests.exceptions", "Timeout"), ("requests.exceptions", "ChunkedEncodingError"))
_RETRY_STATUS = (429, 500, 502, 503, 504)


@cache
def _network_types() -> tuple:
    out = [ConnectionError, TimeoutError, socket.gaierror, socket.herror]  # OfflineModeIsEnabled is a ConnectionError
    for module, name in _NETWORK:
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    try:  # HF_HUB_OFFLINE, or the hub unreachable, and the file not in the local cache
        from huggingface_hub.errors import LocalEntryNotFoundError

        out.append(LocalEntryNotFoundError)
    except ImportError:
        pass
    return tuple(out)


def _status(e: BaseException) -> int | None:
    """The HTTP status of an HTTP error (huggingface_hub's, aiohttp's), if it has one."""
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None) if response is not None else getattr(e, "status", None)
    return status if isinstance(status, int) else None


def is_transient(e: BaseException) -> bool:
    """Whether a failed read says nothing about the checkpoint's bytes: a network-level
    failure (no connection, DNS, timeout, a dropped transfer, offline mode) or an HTTP 429 or
    5xx, in the error or the error it was raised from (transformers wraps hub errors in a
    plain OSError). A local file error (permission, I/O, not found) and an HTTP 401, 403 or
    404 (no such repo, revision or file) are facts: retrying gives the same answer."""
    if isinstance(e, CheckpointError):
        return isinstance(e, TransientError)
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, _network_types()):
            return True
        status = _status(e)
        if status is not None:
            return status in _RETRY_STATUS
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return False
