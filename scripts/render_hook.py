"""Quarto's pre- and post-render hook (_quarto.yml, project: pre-render / post-render).

pre:  put the active profile's own freezer in `_freeze/` and clear the Jupyter cache;
post: put the default build's freezer back and clear the Jupyter cache.
Why: analysis/freezer.py. Runs under Quarto's Python (QUARTO_PYTHON), standard library only.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import freezer  # noqa: E402


def main(stage: str) -> None:
    if stage not in ("pre", "post"):
        raise SystemExit(f"render_hook.py: expected 'pre' or 'post', got {stage!r}")
    tag = freezer.profile_tag() if stage == "pre" else freezer.DEFAULT
    done = freezer.use(ROOT, tag)
    freezer.clear_jupyter_cache(ROOT)
    if stage == "pre" or freezer.profile_tag() != freezer.DEFAULT:
        print(f"render_hook ({stage}, profile {freezer.profile_tag()}): {done}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
