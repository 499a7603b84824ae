"""Near-duplicate removal with MinHash LSH (datasketch), on word n-gram shingles.

Word 3-grams separate the corpus well: a modern-spelling play and its First Folio text
share 18-37% of their 3-gram sets (MinHash Jaccard), two different texts at most ~5%.
"""

import re

from datasketch import MinHash, MinHashLSH


def shingles(text: str, n: int) -> set[bytes]:
    words = re.sub(r"[^a-z]+", " ", text.lower()).split()
    return {" ".join(words[i : i + n]).encode() for i in range(max(len(words) - n + 1, 1))}


def minhashes(docs: dict[str, str], n: int, num_perm: int) -> dict[str, MinHash]:
    out = {}
    for name, text in docs.items():
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch(list(shingles(text, n)))
        out[name] = m
    return out


def deduplicate(docs: dict[str, str], threshold: float, n: int = 3, num_perm: int = 128) -> tuple[list[str], dict]:
    """Keep the first document (in the given order) of every near-duplicate group.

    Returns (kept names, {dropped name: the kept document it duplicates}).
    """
    hashes = minhashes(docs, n, num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept, dropped = [], {}
    for name in docs:
        # LSH gives candidates; keep only those whose estimated Jaccard passes the threshold.
        match = sorted(c for c in lsh.query(hashes[name]) if hashes[name].jaccard(hashes[c]) >= threshold)
        if match:
            dropped[name] = match[0]
        else:
            lsh.insert(name, hashes[name])
            kept.append(name)
    return kept, dropped
