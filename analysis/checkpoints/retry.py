"""Waiting out the hub's rate limit: a call answered 429 (or 503) is made again after the
wait the server names, a bounded number of times.

huggingface_hub retries its file downloads (http_backoff), but its API calls (repo info,
refs, tree, paths-info) go out once and raise on a 429; the hub answers one once a 5-minute
quota is used up, saying when to come back (`Retry-After`, or `RateLimit: "api";r=0;t=55`).
"""

import time

from .errors import TransientError

RETRY_STATUS = (429, 503)
MAX_TRIES = 5
MAX_WAIT_S = 330.0  # all waits together: one 5-minute window and some slack
DEFAULT_WAIT_S = 2.0  # when the answer names no wait: then 2, 4, 8, ... seconds


class RateLimited(TransientError):
    """Still answered 429/503 after the bounded retries (an outer `retrying` does not retry it)."""


def _status_and_headers(e: BaseException):
    """(status, headers) of the HTTP answer behind `e` or its causes, else (None, {})."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status, dict(getattr(response, "headers", None) or {})
        e = e.__cause__ or e.__context__
    return None, {}


def wait_for(headers: dict, attempt: int) -> float:
    """Seconds to wait before the next try: Retry-After, else the RateLimit reset time, else
    exponential backoff."""
    from huggingface_hub.utils import parse_ratelimit_headers

    for k, v in headers.items():
        if k.lower() == "retry-after" and str(v).strip().isdigit():
            return float(v)
    info = parse_ratelimit_headers(headers)
    if info is not None:
        return float(info.reset_in_seconds)
    return DEFAULT_WAIT_S * 2 ** attempt


def _sleep(seconds: float) -> None:  # tests replace it
    time.sleep(seconds)


def retrying(call, what: str):
    """call() again after the server's wait while it is answered 429/503, at most MAX_TRIES
    times and MAX_WAIT_S seconds of waiting in all; then a TransientError saying what to do."""
    waited = 0.0
    for attempt in range(MAX_TRIES):
        try:
            return call()
        except RateLimited:
            raise
        except Exception as e:
            status, headers = _status_and_headers(e)
            if status not in RETRY_STATUS:
                raise
            wait = wait_for(headers, attempt)
            if attempt == MAX_TRIES - 1 or waited + wait > MAX_WAIT_S:
                raise RateLimited(
                    f"{what}: the hub answered {status} ({'rate limit' if status == 429 else 'unavailable'}) "
                    f"{attempt + 1} time(s); waited {waited:.0f} s, and it asks for {wait:.0f} s more. Retry later, "
                    "or log in (HF_TOKEN) for a larger quota; HF_HUB_OFFLINE=1 works from the cache alone") from e
            _sleep(wait)
            waited += wait
