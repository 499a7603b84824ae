"""Bad inputs, table-driven: each is one line on stderr naming the file, tensor or setting and
what was expected, a non-zero exit, and no cache record derived from it.

The CLI runs in-process on a folder suite built here (one run, three steps, two blocks of
width 8); step 2 is the one each case spoils, in block 1 (the audited, middle block)."""

import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import save_file

from analysis import activations, audit, backend, compute, config, results
from analysis.checkpoints import Checkpoint, CheckpointError, Run, TransientError
from analysis.checkpoints import checkpoint as checkpoint_module
from analysis.cli import main

D, LAYERS, STEPS = 8, 2, (0, 1, 2)
BAD = "gpt_neox.layers.1.attention.dense.weight"  # (D, D) float32: 256 bytes
SETTINGS = """analysis:
  suite: folder
  folder: runs
  runs: {reference: a}
  backend: numpy
  verdicts: {draws: 4, bootstrap: 100}
  residual: {width: 8, depth: 4, seeds: 4, n_inputs: 2, alpha_seeds: 2}
"""
WEIGHT_DISTRIBUTION = ["compute", "--chapter", "weight-distribution"]


def weights(step: int) -> dict:
    rng = np.random.default_rng(step)
    out = {}
    for b in range(LAYERS):
        p = f"gpt_neox.layers.{b}."
        out[p + "attention.query_key_value.weight"] = rng.normal(size=(3 * D, D)).astype(np.float32)
        out[p + "attention.dense.weight"] = rng.normal(size=(D, D)).astype(np.float32)
        out[p + "mlp.dense_h_to_4h.weight"] = rng.normal(size=(4 * D, D)).astype(np.float32)
        out[p + "mlp.dense_4h_to_h.weight"] = rng.normal(size=(D, 4 * D)).astype(np.float32)
    return out


def project(root: Path, extra: str = "") -> Path:
    """root/_quarto.yml and root/runs/a/step{0,1,2}/ in Hugging Face layout."""
    for step in STEPS:
        folder = root / "runs" / "a" / f"step{step}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "num_hidden_layers": LAYERS,
                                                        "num_attention_heads": 2}))
        save_file(weights(step), folder / "model.safetensors")
    (root / "_quarto.yml").write_text(SETTINGS + extra)
    return root


def step2(root: Path) -> Path:
    return root / "runs" / "a" / "step2"


# --- ways to spoil step 2 ------------------------------------------------------------------

def with_tensor(value):
    def spoil(root):
        t = weights(2)
        t[BAD] = value
        save_file(t, step2(root) / "model.safetensors")
    return spoil


def with_entry(**changes):
    """Rewrite BAD's header entry (the data bytes stay where they are)."""
    def spoil(root):
        path = step2(root) / "model.safetensors"
        raw = path.read_bytes()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + n])
        header[BAD].update(changes)
        text = json.dumps(header).encode()
        path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    return spoil


def with_pickle(make):
    """step 2 as a PyTorch .bin whose data.pkl is make(the real data.pkl)."""
    def spoil(root):
        folder = step2(root)
        (folder / "model.safetensors").unlink()
        torch.save({k: torch.from_numpy(v) for k, v in weights(2).items()}, folder / "pytorch_model.bin")
        with zipfile.ZipFile(folder / "pytorch_model.bin") as z:
            members = {n: z.read(n) for n in z.namelist()}
        with zipfile.ZipFile(folder / "pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
            for n, b in members.items():
                z.writestr(n, make(b) if n.endswith("data.pkl") else b)
    return spoil


def with_zip_bytes(mode):
    """step 2 as a .bin whose data.pkl member the zip's own checks refuse: `crc` (one byte of
    the stored pickle changed, its CRC not), `deflate` (compressed, then its stream spoiled),
    `method` (a compression method zipfile does not know)."""
    def spoil(root):
        with_pickle(lambda b: b)(root)
        path = step2(root) / "pytorch_model.bin"
        if mode == "crc":
            raw = bytearray(path.read_bytes())
            raw[raw.find(b"FloatStorage")] = ord("G")
            path.write_bytes(bytes(raw))
            return
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for n, b in members.items():
                z.writestr(n, b, zipfile.ZIP_DEFLATED if n.endswith("data.pkl") else zipfile.ZIP_STORED)
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as z:
            info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        if mode == "deflate":
            raw[start : start + 8] = b"\xff" * 8
        else:  # method 99 in the local header and the central directory
            raw[info.header_offset + 8 : info.header_offset + 10] = (99).to_bytes(2, "little")
            i = 0
            while (i := raw.find(b"PK\x01\x02", i)) >= 0:
                n = int.from_bytes(raw[i + 28 : i + 30], "little")
                if raw[i + 46 : i + 46 + n].decode().endswith("data.pkl"):
                    raw[i + 10 : i + 12] = (99).to_bytes(2, "little")
                i += 4
        path.write_bytes(bytes(raw))
    return spoil


def with_settings(text):
    def spoil(root):
        (root / "_quarto.yml").write_text(SETTINGS + text)
    return spoil


def with_config(text):
    def spoil(root):
        (step2(root) / "config.json").write_text(text)
    return spoil


def no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "DRIVER_FILE", Path("/nonexistent/nvidia"))
    backend.cupy_or_none.cache_clear()


CALLED_STORAGE = b"\x80\x02ctorch\nFloatStorage\n)R."  # an allowed name, called as a function
ST = "step2/model.safetensors"
BIN = "step2/pytorch_model.bin"

# id: (spoil, expected exit code, strings the one line must hold)
CASES = {
    # safetensors headers (formats.safetensors_index)
    "shape-product-overflows-int64": (with_entry(shape=[2**62 + 16, 4]), 1, [ST, BAD, "needs"]),
    "shape-two-negative-dims": (with_entry(shape=[-8, -8]), 1, [ST, BAD, "non-negative integers"]),
    "shape-of-floats": (with_entry(shape=[8.0, 8.0]), 1, [ST, BAD, "shape [8.0, 8.0]"]),
    "shape-with-a-bool": (with_entry(shape=[True, 64]), 1, [ST, BAD, "shape [True, 64]"]),
    "shape-not-a-list": (with_entry(shape="8x8"), 1, [ST, BAD, "not a list"]),
    "offsets-of-floats": (with_entry(data_offsets=[0.0, 256.0]), 1, [ST, BAD, "data_offsets"]),
    "dtype-not-a-string": (with_entry(dtype=["F32"]), 1, [ST, BAD, "not a string"]),
    "integer-dtype-as-weights": (with_tensor(np.arange(D * D, dtype=np.int32).reshape(D, D)), 1,
                                 [ST, BAD, "step 2", "int32, not floating point"]),
    # degenerate matrices (Checkpoint.matrix)
    "all-zero-matrix": (with_tensor(np.zeros((D, D), np.float32)), 1, [ST, BAD, "step 2", "all zero"]),
    "constant-matrix": (with_tensor(np.full((D, D), 0.5, np.float32)), 1, [ST, BAD, "constant"]),
    "non-finite-matrix": (with_tensor(np.where(np.eye(D) > 0, np.nan, 1.0).astype(np.float32)), 1,
                          [ST, BAD, "step 2", "8 non-finite values"]),
    "one-entry-matrix": (with_tensor(np.eye(D, dtype=np.float32)[:1].repeat(D, 0) * (np.arange(D) == 0)[:, None]), 1,
                         [ST, BAD, "step 2 block 1 attn_out", "rank 1", "at least 2 nonzero singular values"]),
    "outer-product-matrix": (with_tensor(np.outer(np.arange(1, D + 1), np.ones(D)).astype(np.float32)), 1,
                             [ST, BAD, "step 2 block 1 attn_out", "rank 1"]),
    "two-equal-singular-values": (with_tensor(np.diag([1.0, 1.0] + [0.0] * (D - 2)).astype(np.float32)), 1,
                                  ["step 2 block 1 attn_out", BAD, "2 equal nonzero singular values"]),
    "empty-matrix": (with_tensor(np.zeros((0, D), np.float32)), 1, [ST, BAD, "step 2", "empty (shape (0, 8))"]),
    "matrix-of-another-shape": (with_tensor(np.ones((D, 2 * D), np.float32) + np.eye(D, 2 * D, dtype=np.float32)), 1,
                                ["step 2", BAD, "(8, 16)", "share a shape"]),
    "matrix-not-the-configured-width": (with_config('{"model_type": "gpt_neox", "num_hidden_layers": 2, '
                                                    '"num_attention_heads": 2, "hidden_size": 16}'), 1,
                                        [ST, "step 2 block 0 qkv", "(24, 8)", "width 16"]),
    # PyTorch .bin pickles (formats.torch_zip_index)
    "truncated-pickle": (with_pickle(lambda b: b[: len(b) // 2]), 1, [BIN, "EOFError"]),
    "storage-called-as-function": (with_pickle(lambda b: CALLED_STORAGE), 1, [BIN, "TypeError"]),
    "data-pkl-bad-crc": (with_zip_bytes("crc"), 1, [BIN, "data.pkl' cannot be read", "BadZipFile", "CRC"]),
    "data-pkl-corrupt-deflate": (with_zip_bytes("deflate"), 1, [BIN, "data.pkl' cannot be read", "error"]),
    "data-pkl-unknown-compression": (with_zip_bytes("method"), 1, [BIN, "data.pkl' cannot be read", "NotImplementedError"]),
    "pickle-refuses-os-system": (with_pickle(lambda b: b"\x80\x02cos\nsystem\n."), 1, [BIN, "refusing to load os.system"]),
    # checkpoint folders
    "config-not-json": (with_config("{not json"), 1, ["step2/config.json", "not valid JSON"]),
    "config-layers-not-int": (with_config('{"model_type": "gpt_neox", "num_hidden_layers": "2", "num_attention_heads": 2}'),
                              1, ["step2/config.json", "num_hidden_layers is '2'"]),
    "unknown-model-type": (with_config('{"model_type": "mamba"}'), 1, ["step2/config.json", "'mamba' is not supported"]),
    # settings
    "block-out-of-range": (with_settings("  block: 7\n"), 2, ["analysis.block", "blocks 0..1"]),
    "block-yes": (with_settings("  block: yes\n"), 2, ["analysis.block", "True"]),
    "steps-true": (with_settings("  steps: [true]\n"), 2, ["analysis.steps", "[True]"]),
    "no-steps": (with_settings("  steps: []\n"), 2, ["analysis.steps", "non-empty list", "got []"]),
    "step-not-in-run": (with_settings("  steps: [0, 5]\n"), 2, ["analysis.steps", "no step(s) [5]"]),
    "unknown-setting": (with_settings("  colour: red\n"), 2, ["_quarto.yml", "unknown setting 'colour'"]),
    "missing-run-folder": (with_settings("  runs: {reference: b}\n"), 1, ["run 'b'", "does not exist"]),
    "cupy-without-a-gpu": (with_settings("  backend: cupy\n"), 1, ["analysis.backend", "cupy", "analysis.backend: numpy"]),
}


def snapshot(cache: Path) -> dict:
    return {str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(cache.rglob("*")) if p.is_file()}


def new_records(cache: Path, before: dict) -> list[dict]:
    """The keys of result records written or changed since `before`."""
    keys = []
    for rel, digest in snapshot(cache).items():
        if before.get(rel) != digest:
            assert rel.endswith(".npz"), rel  # nothing half-written or stray
            with np.load(cache / rel, allow_pickle=False) as z:
                keys.append(json.loads(str(z["__key__"])))
    return keys


def derived_from_step2(key: dict) -> bool:
    """A record built from step 2's spoiled tensor (the spectra of its other, sound matrices
    are no less true for it), or a table built on it. The audit table is the exception the issue allows:
    a verdict about the bytes themselves, keyed by their hash."""
    if key["kind"] == "table":
        return key["name"] != "audit"
    return (key.get("id", [None, None])[:2] == ["a", 2] and key.get("tensor") == BAD) or key["kind"] == "activations"


def cli(root: Path, argv, monkeypatch, capsys):
    """(exit code, stderr) of `python -m analysis ARGV` run in `root`."""
    monkeypatch.chdir(root)
    monkeypatch.delenv("QUARTO_PROFILE", raising=False)
    monkeypatch.delenv("ANALYSIS_CACHE_DIR", raising=False)
    monkeypatch.delenv("ANALYSIS_DEBUG", raising=False)
    code = main(argv)
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    """The error line; every other stderr line is a one-line warning or a progress bar."""
    lines = [line for line in err.splitlines() if line.strip()]  # splits a bar's \r updates too
    assert "Traceback" not in err
    assert all(line.startswith(("error: ", "warning: ")) or re.match(r"\w+: +\d+%\|", line) for line in lines), err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_a_nonzero_exit_and_nothing_cached(case, tmp_path, monkeypatch, capsys):
    spoil, code, needles = CASES[case]
    root = project(tmp_path)
    spoil(root)
    if case == "cupy-without-a-gpu":
        no_gpu(monkeypatch)
    cache = root / ".cache"
    before = snapshot(cache) if cache.exists() else {}
    got, err = cli(root, WEIGHT_DISTRIBUTION, monkeypatch, capsys)
    line = error_line(err)
    assert got == code, err
    for needle in needles:
        assert needle in line, (needle, line)
    if cache.exists():
        assert not [k for k in new_records(cache, before) if derived_from_step2(k)]


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    root = project(tmp_path)
    with_tensor(np.zeros((D, D), np.float32))(root)
    with pytest.raises(CheckpointError, match="all zero"):
        cli(root, [*WEIGHT_DISTRIBUTION, "--debug"], monkeypatch, capsys)
    monkeypatch.setenv("ANALYSIS_DEBUG", "1")
    monkeypatch.chdir(root)
    with pytest.raises(CheckpointError, match="all zero"):
        main(WEIGHT_DISTRIBUTION)


# --- the audit -----------------------------------------------------------------------------

def test_audit_flags_degenerate_tensors_and_the_warning_says_why(tmp_path, monkeypatch, capsys):
    root = project(tmp_path)
    with_tensor(np.zeros((D, D), np.float32))(root)
    code, _ = cli(root, ["audit"], monkeypatch, capsys)
    assert code == 0
    cfg = config.load(root=root)
    r = results.Results(cfg)
    row = r.audit.set_index("step").loc[2]
    assert row["flag"] == f"tensor {BAD} all zero"
    with pytest.warns(UserWarning, match=rf"audit flags steps \(2: tensor {BAD} all zero\): kept"):
        r.steps  # noqa: B018


def test_integer_tensors_are_flagged_with_their_dtype(tmp_path):
    root = project(tmp_path)
    with_tensor(np.ones((D, D), np.int32))(root)
    table = audit.audit({"a": Run("a", root / "runs" / "a")}, tensors_for=lambda run: [BAD]).set_index("step")
    assert table.loc[2, "flag"] == f"tensor {BAD} of dtype int32, not floating point"


@pytest.mark.parametrize("mode", ["crc", "deflate", "method"])
def test_a_corrupt_bin_is_an_unreadable_audit_row_not_a_crash(mode, tmp_path):
    root = project(tmp_path)
    with_zip_bytes(mode)(root)
    table = audit.audit({"a": Run("a", root / "runs" / "a")}, tensors_for=lambda run: [BAD]).set_index("step")
    assert list(table["flag"]) == ["", "", "unreadable"]
    assert "pytorch_model.bin: member" in table.loc[2, "error"] and "data.pkl' cannot be read" in table.loc[2, "error"]


def test_leaving_out_every_step_is_one_line_saying_why(tmp_path, monkeypatch, capsys):
    root = project(tmp_path, "  exclude_flagged: true\n")
    for step in STEPS:
        save_file({**weights(step), BAD: np.zeros((D, D), np.float32)}, root / "runs" / "a" / f"step{step}" / "model.safetensors")
    code, err = cli(root, WEIGHT_DISTRIBUTION, monkeypatch, capsys)
    line = error_line(err)
    assert code == 1
    assert "run 'a': no step is left for analysis.steps: the audit flags every one of [0, 1, 2]" in line
    assert f"2: tensor {BAD} all zero" in line and "exclude_flagged: false" in line


def test_a_head_count_that_does_not_split_qkv_is_named(tmp_path, monkeypatch, capsys):
    root = project(tmp_path)
    with_config('{"model_type": "gpt_neox", "num_hidden_layers": 2, "num_attention_heads": 5}')(root)
    code, err = cli(root, ["compute", "--chapter", "methods"], monkeypatch, capsys)
    line = error_line(err)
    assert code == 1 and "run 'a' step 2 block 1 qkv: qkv matrix has 24 rows" in line
    assert "num_attention_heads=5 in" in line and "step2/config.json" in line


def test_activation_steps_name_their_own_setting(tmp_path):
    root = project(tmp_path, "  exclude_flagged: true\n  activation_steps: [2]\n")
    with_tensor(np.zeros((D, D), np.float32))(root)
    r = results.Results(config.load(root=root))
    with pytest.warns(UserWarning, match="left out"):
        r.steps  # noqa: B018
    with pytest.raises(CheckpointError, match=r"run 'a': no step is left for analysis.activation_steps: .* \[2\]"):
        compute._activation_steps(r, "a")
    r.cfg["activation_steps"] = [7]
    with pytest.raises(config.ConfigError, match=r"analysis.activation_steps: run 'a' has no step\(s\) \[7\]"):
        compute._activation_steps(r, "a")


def test_steps_without_a_hash_are_not_identical_to_each_other(tmp_path):
    """pandas 3 turns None in a string column into NaN, which is truthy: two unreadable steps
    must not be reported as identical to each other."""
    root = project(tmp_path)
    for step in (1, 2):
        (root / "runs" / "a" / f"step{step}" / "model.safetensors").unlink()
    table = audit.audit({"a": Run("a", root / "runs" / "a")}, tensors_for=lambda run: [BAD]).set_index("step")
    assert list(table["flag"]) == ["", "unreadable", "unreadable"]


def test_a_broken_first_step_is_flagged_and_left_out_not_fatal(tmp_path, monkeypatch, capsys):
    root = project(tmp_path, "  exclude_flagged: true\n")
    (root / "runs" / "a" / "step0" / "config.json").write_text("{not json")
    code, err = cli(root, WEIGHT_DISTRIBUTION, monkeypatch, capsys)
    assert code == 0, err
    r = results.Results(config.load(root=root))
    with pytest.warns(UserWarning, match="0: unreadable .*step0/config.json: not valid JSON.*left out"):
        assert r.steps == {"a": [1, 2]}
    assert r.n_layers == LAYERS and set(r.measures.step) == {1, 2}
    assert compute._run_info(r)["blocks"].tolist() == [LAYERS]


def test_exclude_flagged_reaches_qkv_parts_and_activation_steps(tmp_path):
    root = project(tmp_path, "  exclude_flagged: true\n  activation_steps: [0, 1, 2]\n")
    with_tensor(np.zeros((D, D), np.float32))(root)  # flags step 2, the last
    r = results.Results(config.load(root=root))
    with pytest.warns(UserWarning, match="left out") as seen:
        assert compute._activation_steps(r, "a") == [0, 1]
        assert compute._activation_steps(r, "a") == [0, 1]
    assert len([w for w in seen if "the audit flags" in str(w.message)]) == 1  # said once, not per setting
    from analysis.spectra import singular_values

    w1 = Checkpoint(root / "runs" / "a" / "step1", 1).matrix("qkv", 1).astype(np.float64)
    np.testing.assert_allclose(r.qkv_parts["fused_sv"], singular_values(w1))


# --- temporary failures --------------------------------------------------------------------

def flaky(monkeypatch, step: int):
    """Reading any tensor of `step` fails as a dropped connection does."""
    real = checkpoint_module.Checkpoint._tensors

    def read(self, names):
        if self.step == step:
            raise ConnectionError("Failed to resolve 'huggingface.co' ([Errno -3] Temporary failure in name resolution)")
        return real(self, names)

    monkeypatch.setattr(checkpoint_module.Checkpoint, "_tensors", read)


@pytest.mark.parametrize("exclude", [True, False], ids=["exclude_flagged", "keep_flagged"])
def test_a_transient_failure_then_a_good_run_equals_the_good_run_alone(exclude, tmp_path, monkeypatch, capsys):
    extra = f"  exclude_flagged: {str(exclude).lower()}\n"
    twice, once = project(tmp_path / "twice", extra), project(tmp_path / "once", extra)
    with monkeypatch.context() as m:
        flaky(m, 2)
        code, err = cli(twice, WEIGHT_DISTRIBUTION, monkeypatch, capsys)
        assert code == 1 and "temporary" in error_line(err) and "step2" in error_line(err)
        for line in [error_line(err)] + [x for x in err.splitlines() if x.startswith("warning: ")]:
            assert line.count("temporary failure") == 1 and line.count("retry") == 1, line  # said once
        table = results.Results(config.load(root=twice)).audit.set_index("step")
        assert table.loc[2, "flag"] == "not read (temporary failure)" and table.loc[2, "transient"]
    if (twice / ".cache").exists():
        assert not [k for k in new_records(twice / ".cache", {}) if k["kind"] == "table"]  # nothing shaped by it
    assert cli(twice, WEIGHT_DISTRIBUTION, monkeypatch, capsys)[0] == 0
    assert cli(once, WEIGHT_DISTRIBUTION, monkeypatch, capsys)[0] == 0
    assert set(snapshot(twice / ".cache")) == set(snapshot(once / ".cache"))  # the same records, no others
    a, b = results.Results(config.load(root=twice)), results.Results(config.load(root=once))
    for name in ("audit", "measures", "draws", "verdicts"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert a.store.misses == 0 and a.steps == {"a": [0, 1, 2]}


def test_an_offline_miss_is_a_temporary_audit_row(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from analysis.checkpoints.tensor_cache import TensorCache

    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE") as err:
        TensorCache(tmp_path).get_or_read("x/y@1", "w", lambda: np.zeros(1))
    from analysis.checkpoints import is_transient

    assert is_transient(err.value)

    class OfflineRun:
        name = "r"
        steps = [0]

        def checkpoint(self, step):
            raise err.value

    row = audit.check_step(OfflineRun(), 0, ["w"])
    assert row["transient"] and "HF_HUB_OFFLINE" in row["error"]
    assert audit.flag([row]).loc[0, "flag"] == "not read (temporary failure)"


# --- activations ---------------------------------------------------------------------------

def transformers_checkpoint(folder: Path, **config_changes) -> Path:
    """A GPT-NeoX checkpoint saved by transformers (2 blocks), its config then edited."""
    from tokenizers import Tokenizer, models
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=32, max_position_embeddings=32))
    model.save_pretrained(folder / "a" / "step0")
    Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    path = folder / "a" / "step0" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config_changes}))
    return folder / "a"


@pytest.mark.parametrize("changes,message", [
    ({"num_hidden_layers": 3}, r"key 'gpt_neox\.layers\.2\.[a-z_.]+' is missing from the weights .*num_hidden_layers=3"),
    ({"num_hidden_layers": 1}, r"key 'gpt_neox\.layers\.1\.[a-z_.]+' is in the weights but not in the model"),
    ({"intermediate_size": 48}, r"key 'gpt_neox\.layers\.0\.mlp\.[a-z_.0-9]+' has shape \(\d+(, \d+)?\) in the weights, "
                                r"\(\d+(, \d+)?\) in the model.*intermediate_size=48"),
])
def test_activations_refuse_weights_that_do_not_fill_the_configured_model(tmp_path, changes, message):
    run = Run("a", transformers_checkpoint(tmp_path / "runs", **changes))
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=message) as err:
        activations.of_runs({"a": run}, {"a": [0]}, cache)
    assert "run 'a' step 0" in str(err.value) and "step0" in str(err.value)
    assert not list(cache.rglob("*.npz"))


def test_activations_of_a_faithful_checkpoint_load(tmp_path, capsys):
    run = Run("a", transformers_checkpoint(tmp_path / "runs"))
    capsys.readouterr()
    model, _ = activations.load_model(run, run.checkpoint(0))
    assert len(activations._blocks(model)) == 2
    assert "Loading weights" not in capsys.readouterr().err  # transformers' bar would break the one-line stderr


def word_tokenizer(folder: Path, unk: int = 0) -> None:
    """A tokenizer.json that cuts the held-out text into words (enough tokens for a batch)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": unk, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("tensor,message", [
    ("gpt_neox.layers.1.mlp.dense_4h_to_h.weight", r"block 1's output holds 4096 non-finite values of 4096"),
    ("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", r"block 0's output holds \d+ non-finite values"),
])
def test_activations_refuse_non_finite_outputs_before_caching(tmp_path, tensor, message):
    from safetensors.torch import load_file, save_file as save_torch

    folder = transformers_checkpoint(tmp_path / "runs")
    word_tokenizer(tmp_path / "runs")
    path = folder / "step0" / "model.safetensors"
    weights = load_file(path)
    weights[tensor][:] = float("nan")
    save_torch(weights, path, metadata={"format": "pt"})
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=rf"run 'a' step 0 \(.*step0\): {message}"):
        activations.of_runs({"a": Run("a", folder)}, {"a": [0]}, cache)
    assert not list(cache.rglob("*.npz"))


def test_activations_of_a_sound_checkpoint_are_finite_and_cached(tmp_path):
    folder = transformers_checkpoint(tmp_path / "runs")
    word_tokenizer(tmp_path / "runs")
    (rec,) = activations.of_runs({"a": Run("a", folder)}, {"a": [0]}, tmp_path / "cache")
    assert np.isfinite(rec["hist"]).all() and rec["hist"].shape == (2, len(activations.EDGES) - 1)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1


# --- safetensors headers, fuzz-style (small, deterministic) ---------------------------------

def header_variants():
    """Single-field mutations of one valid entry: every one must be refused by name."""
    good = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    fields = {"dtype": ["I32", "F32 ", None, 4, ["F32"], True],
              "shape": [[2, -2], [-2, -2], [4, -1, -1], [2.0, 2], [True, 4], "22", None, [2**40, 2**40, 2**40],
                        [2**62 + 1, 4]],
              "data_offsets": [[0, 16.0], [0], [0, 16, 32], [False, 16], [16, 0], [-16, 0], "0-16", None]}
    for field, values in fields.items():
        for v in values:
            if field == "dtype" and v == "I32":
                continue  # a valid header: refused only when read as a weight matrix (above)
            yield {**good, field: v}
    yield {"dtype": "F32", "shape": [2, 2]}
    yield ["F32", [2, 2], [0, 16]]


@pytest.mark.parametrize("entry", list(header_variants()), ids=lambda e: json.dumps(e)[:60])
def test_every_malformed_header_entry_is_a_named_error(tmp_path, entry):
    from analysis.checkpoints.formats import FormatError, safetensors_index

    header = json.dumps({"w": entry}).encode()
    data = len(header).to_bytes(8, "little") + header + b"\0" * 16
    with pytest.raises(FormatError, match=r"x\.safetensors: tensor 'w'"):
        safetensors_index(io.BytesIO(data), len(data), "x.safetensors")



# --- spectra whose measures would be NaN ----------------------------------------------------

def test_unmeasurable_spectra_say_why_and_sound_ones_pass():
    from analysis.measures import unmeasurable

    assert unmeasurable(np.array([3.0, 1e-30, 0.0, 0.0]), 4, 4) == \
        "rank 1 of 4: the tail fit needs at least 2 nonzero singular values"
    assert "2 equal nonzero" in unmeasurable(np.array([1.0, 1.0, 0.0, 0.0]), 4, 4)
    assert unmeasurable(np.linalg.svd(np.random.default_rng(0).normal(size=(16, 64)), compute_uv=False), 16, 64) == ""


def test_measure_tables_refuse_non_finite_measures_by_name():
    """The last guard: a record whose measures come out non-finite never becomes a table row."""
    from analysis import measures
    from analysis.errors import AnalysisError

    rng = np.random.default_rng(0)
    draws = {k: np.sort(rng.gamma(2, size=(4, D)), axis=1)[:, ::-1] for k in ("gaussian", "logistic", "shuffled")}
    rec = {"run": "a", "step": 2, "block": 1, "role": "attn_out", "sv": np.array([1.0] + [0.0] * (D - 1)),
           "gaussian_scale": 1.0, "rows": D, "cols": D, "kurtosis": 0.0, "std": 1.0, **draws}
    with pytest.raises(AnalysisError, match=r"run 'a' step 2 block 1 attn_out: non-finite alpha"):
        measures.tables([rec])


# --- what counts as temporary ---------------------------------------------------------------

def _http(cls, status):
    import httpx2

    return cls(f"{status} from the hub", response=httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x")))


def _wrapped(inner):
    """An error raised from another, as transformers raises a plain OSError from a hub error."""
    try:
        try:
            raise inner
        except Exception as e:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files") from e
    except OSError as outer:
        return outer


def _transient_cases():
    import errno
    import socket

    import aiohttp
    import httpx2
    from huggingface_hub import errors as hf

    yes = {"ConnectionError": ConnectionError("reset"), "TimeoutError": TimeoutError("timed out"),
           "socket.gaierror": socket.gaierror(-3, "Temporary failure in name resolution"),
           "httpx2.ConnectError": httpx2.ConnectError("refused"), "httpx2.ReadTimeout": httpx2.ReadTimeout("slow"),
           "HTTP 429": _http(hf.HfHubHTTPError, 429), "HTTP 503": _http(hf.HfHubHTTPError, 503),
           "OfflineModeIsEnabled": hf.OfflineModeIsEnabled("offline"),
           "LocalEntryNotFoundError": hf.LocalEntryNotFoundError("not cached and offline"),
           "OSError from ConnectError": _wrapped(httpx2.ConnectError("refused")),
           "aiohttp disconnect": aiohttp.ServerDisconnectedError(),
           "aiohttp 502": aiohttp.ClientResponseError(None, (), status=502, message="Bad Gateway")}
    no = {"PermissionError": PermissionError(errno.EACCES, "Permission denied"), "EIO": OSError(errno.EIO, "I/O error"),
          "FileNotFoundError": FileNotFoundError("gone"), "plain OSError": OSError("no file named model.safetensors"),
          "RepositoryNotFoundError": _http(hf.RepositoryNotFoundError, 404),
          "RevisionNotFoundError": _http(hf.RevisionNotFoundError, 404),
          "EntryNotFoundError": _http(hf.RemoteEntryNotFoundError, 404), "GatedRepoError": _http(hf.GatedRepoError, 401),
          "HTTP 403": _http(hf.HfHubHTTPError, 403), "OSError from 404": _wrapped(_http(hf.RepositoryNotFoundError, 404)),
          "aiohttp 404": aiohttp.ClientResponseError(None, (), status=404, message="Not Found"),
          "CheckpointError": CheckpointError("bad bytes")}
    return [pytest.param(e, True, id=k) for k, e in yes.items()] + [pytest.param(e, False, id=k) for k, e in no.items()]


@pytest.mark.parametrize("error,transient", _transient_cases())
def test_only_network_level_failures_are_temporary(error, transient):
    from analysis.checkpoints import is_transient

    assert is_transient(error) is transient


def failing(monkeypatch, step: int, error: Exception):
    real = checkpoint_module.Checkpoint._tensors

    def read(self, names):
        if self.step == step:
            raise error
        return real(self, names)

    monkeypatch.setattr(checkpoint_module.Checkpoint, "_tensors", read)


@pytest.mark.parametrize("errno_, text", [(13, "Permission denied"), (5, "Input/output error")], ids=["EACCES", "EIO"])
def test_a_local_read_error_is_a_fact_the_audit_caches_and_exclude_flagged_leaves_out(errno_, text, tmp_path,
                                                                                      monkeypatch, capsys):
    root = project(tmp_path, "  exclude_flagged: true\n")
    failing(monkeypatch, 2, OSError(errno_, text, str(step2(root) / "model.safetensors")))
    code, err = cli(root, WEIGHT_DISTRIBUTION, monkeypatch, capsys)
    assert code == 0, err
    r = results.Results(config.load(root=root))
    row = r.audit.set_index("step").loc[2]
    assert row["flag"] == "unreadable" and not row["transient"] and text in row["error"]
    assert r.store.misses == 0  # the audit (and every table) was cached
    with pytest.warns(UserWarning, match="left out"):
        assert r.steps == {"a": [0, 1]}


def test_a_local_folder_transformers_cannot_load_is_no_temporary_failure(tmp_path):
    folder = transformers_checkpoint(tmp_path / "runs") / "step0"
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"here: transformers cannot load it \(OSError") as err:
        activations.checked_model(str(folder), "here")
    assert not isinstance(err.value, TransientError)


@pytest.mark.parametrize("status,kind", [(404, CheckpointError), (503, TransientError)])
def test_listing_a_missing_hub_repo_is_a_fact_a_server_error_temporary(status, kind, tmp_path, monkeypatch):
    from huggingface_hub import errors as hf

    from analysis.checkpoints import retry

    monkeypatch.setattr(retry, "_sleep", lambda s: None)  # a 503 is retried after a wait: not in a unit test

    from analysis.checkpoints.hub import HubRun

    class Api:
        def list_repo_refs(self, repo_id, **kw):
            raise _http(hf.RepositoryNotFoundError if status == 404 else hf.HfHubHTTPError, status)

    with pytest.raises(CheckpointError, match="EleutherAI/pythia-typo: cannot list the repo's branches") as err:
        HubRun("EleutherAI/pythia-typo", tmp_path, api=Api())
    assert type(err.value) is kind


def test_a_hub_tokenizer_network_failure_is_temporary_and_one_line(tmp_path, monkeypatch):
    import httpx2
    import transformers

    def unreachable(*a, **k):
        raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", unreachable)

    class HubLike:
        name, repo, cache_dir, main_commit = "a", "org/model", tmp_path, "f" * 40

    class Ckpt:
        step, folder, cache_id = 3, "org/model@" + "0" * 40, "org/model@" + "0" * 40

    with pytest.raises(TransientError, match=r"run 'a' step 3 .*tokenizer of org/model \(ConnectError: .*a temporary "
                                             r"failure: retry"):
        activations.load_model(HubLike(), Ckpt())


# --- what transformers and tokenizers refuse ------------------------------------------------

def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("spoil,message", [
    (lambda runs: transformers_checkpoint(runs, num_attention_heads=3), r"transformers cannot load it \(\w+"),
    (lambda runs: _truncate(transformers_checkpoint(runs) / "step0" / "model.safetensors"),
     r"transformers cannot load it \(\w*SafetensorError"),
    (lambda runs: (transformers_checkpoint(runs), (runs / "tokenizer.json").write_text("{not json")),
     r"tokenizer\.json: not a tokenizers tokenizer\.json \(Exception"),
    (lambda runs: transformers_checkpoint(runs), r"held-out text into 1 tokens; expected at least one sequence of 32"),
    (lambda runs: (transformers_checkpoint(runs), word_tokenizer(runs, unk=100)),
     r"token id 100 but config.json's vocab_size is 64"),
], ids=["heads-do-not-divide-width", "truncated-safetensors", "tokenizer-not-json", "too-few-tokens", "another-vocab"])
def test_what_transformers_refuses_is_one_named_line(spoil, message, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    spoil(runs)
    if "tokenizer" not in message and "tokens" not in message and "token id" not in message:
        word_tokenizer(runs)
    capsys.readouterr()
    with pytest.raises(CheckpointError, match=message) as err:
        activations.of_runs({"a": Run("a", runs / "a")}, {"a": [0]}, tmp_path / "cache")
    assert "\n" not in " ".join(str(err.value).split()) and not isinstance(err.value, TransientError)
    assert "tokenizer.json" in str(err.value) or "run 'a' step 0" in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_a_model_without_known_blocks_is_named():
    with pytest.raises(CheckpointError, match="Linear: cannot find its transformer blocks; expected"):
        activations._blocks(torch.nn.Linear(2, 2))


def test_rank_one_is_judged_to_the_precision_of_the_dtype():
    from analysis.checkpoints.checkpoint import defect, rank_at_most_one

    rng = np.random.default_rng(0)
    for dtype in (np.float16, np.float32, np.float64):  # rank 1, rounded to the dtype
        assert rank_at_most_one(np.outer(rng.normal(size=300), rng.normal(size=500)).astype(dtype), chunk=1 << 14)
    spike = rng.normal(size=(64, 256)).astype(np.float32)
    spike += 1e4 * np.outer(rng.normal(size=64), rng.normal(size=256)).astype(np.float32)  # sigma_1 / sigma_2 ~ 1e4
    assert not rank_at_most_one(spike) and defect(spike) == ""
    assert not rank_at_most_one(np.diag([1.0, 1e-6, 0.0]))
