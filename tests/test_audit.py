import shutil

import torch

from analysis import audit
from analysis.checkpoints import Run

from .test_formats import write_folder


def make_run(tmp_path):
    """Steps 0, 1 identical (as Pythia reports), 2 distinct, 3 holding a NaN, 4 without weights."""
    root = tmp_path / "run"
    g = torch.Generator().manual_seed(0)
    w0, w2 = torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g)
    write_folder(root / "step0", {"w": w0})
    shutil.copytree(root / "step0", root / "step1")
    write_folder(root / "step2", {"w": w2})
    bad = w2.clone()
    bad[0, 0] = float("nan")
    write_folder(root / "step3", {"w": bad})
    (root / "step4").mkdir()
    (root / "step4" / "config.json").write_text("{}")
    return Run("r", root)


def test_audit_flags_identical_unreadable_and_nonfinite_steps(tmp_path):
    run = make_run(tmp_path)
    table = audit.audit({"r": run}, tensors_for=lambda r: ["w"]).set_index("step")
    assert table.loc[0, "flag"] == ""
    assert "weights identical to step 0" in table.loc[1, "flag"] and "tensors read identical to step 0" in table.loc[1, "flag"]
    assert table.loc[2, "flag"] == ""
    assert table.loc[3, "flag"] == "1 non-finite values"
    assert table.loc[4, "flag"] == "unreadable" and "no weights" in table.loc[4, "error"]
    assert audit.flagged_steps(table.reset_index()) == {"r": {1, 3, 4}}


def test_missing_steps_of_the_expected_schedule_are_listed():
    rows = [{"run": "r", "step": s, "content_hash": str(s), "tensors_hash": None, "nonfinite": 0, "error": ""}
            for s in (0, 1, 2)]
    table = audit.flag(rows, {"r": [0, 1, 2, 4, 8]})
    assert list(table[table["flag"] == "missing"]["step"]) == [4, 8]


def test_pythia_schedule_has_154_steps():
    steps = audit.pythia_schedule()
    assert len(steps) == 154 and steps[:4] == [0, 1, 2, 4] and steps[10:12] == [512, 1000] and steps[-1] == 143000
