"""Where a tiny suite lives and when it saves: its settings' digest and Pythia's schedule."""

import hashlib
import json


def checkpoint_steps(total: int, every: int) -> list[int]:
    """Pythia's schedule: 0 and powers of two up to 512 (within `total`), then every `every` steps."""
    steps = [0] + [2**i for i in range(10) if 2**i <= total]
    start = max(steps)
    steps += list(range(every * (start // every + 1), total + 1, every))
    if steps[-1] != total:
        steps.append(total)
    return sorted(set(steps))


def suite_key(cfg: dict) -> str:
    """Digest of the `tiny` settings: one suite folder per distinct configuration."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
