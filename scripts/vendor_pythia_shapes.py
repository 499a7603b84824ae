"""Write analysis/data/pythia-shapes.json: each Pythia size's shape as EleutherAI published it,
for `python -m analysis plan` when the hub cannot be asked.

    python scripts/vendor_pythia_shapes.py GIT_DIR   # a checkout or bare git dir of EleutherAI/pythia

Read: README.md's model table (n_layers, d_model, n_heads; 14m and 31m: standard runs only)
and its seed list (PolyPythias: pythia-{size}-seed{1..9}), and models/*/pythia-{size}.yml
(GPT-NeoX training configs: model-parallel-size, fp16). Derived, not read: the MLP width
(GPT-NeoX's default 4 x d_model; the configs set none), the padded vocabulary (the 20B
tokenizer's 50,277 ids rounded up to a multiple of 128 x model-parallel-size, GPT-NeoX's
make-vocab-size-divisible-by default) and the 154 checkpoint steps the README lists.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "analysis" / "data" / "pythia-shapes.json"
TOKENIZER_IDS = 50277  # EleutherAI/gpt-neox-20b's tokenizer, special tokens included


def show(git_dir: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def blob(git_dir: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "rev-parse", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout.strip()


def main(git_dir: str) -> None:
    if (Path(git_dir) / ".git").exists():
        git_dir = str(Path(git_dir) / ".git")
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    readme = show(git_dir, "README.md")
    seeds = re.search(r"each random seed from 1 to 9\.\s+((?:- Pythia \w+\s+)+)", readme)
    seeded = {s.lower() for s in re.findall(r"- Pythia (\w+)", seeds.group(1))}
    models, sources = {}, {"README.md": blob(git_dir, "README.md")}
    for m in re.finditer(r"^\| (\d+(?:\.\d+)?[MB])\s+\| (\d+)\s+\| (\d+)\s+\| (\d+)\s+\| \d+\s+\|.*?\|.*?\| (.*)\|$",
                         readme, re.M):
        size = m[1].lower()
        yml = f"models/{m[1]}/pythia-{size}.yml"
        cfg = show(git_dir, yml)
        mp = int(re.search(r'"model-parallel-size":\s*(\d+)', cfg)[1])
        assert re.search(r'"fp16":\s*\{\s*"fp16":\s*true', cfg), yml
        sources[yml] = blob(git_dir, yml)
        d, pad = int(m[3]), 128 * mp
        repos = {"standard": f"EleutherAI/pythia-{size}"}
        if "Deduped" in m[5]:
            repos["deduped"] = f"EleutherAI/pythia-{size}-deduped"
        if size in seeded:
            repos["seeds"] = [f"EleutherAI/pythia-{size}-seed{i}" for i in range(1, 10)]
        models[size] = {"n_layers": int(m[2]), "d_model": d, "n_heads": int(m[4]), "d_mlp": 4 * d,
                        "vocab": -(-TOKENIZER_IDS // pad) * pad, "model_parallel": mp, "repos": repos}
    steps = re.search(r"representing steps (.*?), and then every 1,000 subsequent steps", readme)
    early = [int(s) for s in re.findall(r"\d+", steps[1].replace("1,000", ""))]
    record = {
        "source": f"github.com/EleutherAI/pythia@{commit}",
        "files": sources,
        "read": "README.md model table (n_layers, d_model, n_heads), its list of sizes with seed runs and "
                "its checkpoint schedule; models/*/pythia-{size}.yml (model-parallel-size, fp16)",
        "derived": f"d_mlp = 4 x d_model (GPT-NeoX default); vocab = {TOKENIZER_IDS} tokenizer ids rounded up to a "
                   "multiple of 128 x model-parallel-size; steps: the README's early steps, then every 1000 to 143000",
        "note": "models/12B/pythia-12b-deduped.yml says 40 layers and 36 heads; the README table (and pythia-12b.yml) "
                "say 36 and 40, which is what is recorded",
        "dtype": "float16",
        "steps": sorted(set(early) | set(range(1000, 143001, 1000))),
        "models": models,
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}: {len(models)} sizes, {len(record['steps'])} steps")


if __name__ == "__main__":
    main(sys.argv[1])
