import pytest

from analysis import config


def write_project(tmp_path, main: str, **profiles):
    (tmp_path / "_quarto.yml").write_text(main)
    for name, text in profiles.items():
        (tmp_path / f"_quarto-{name}.yml").write_text(text)
    return tmp_path


def test_defaults_fill_what_quarto_yml_leaves_out(tmp_path):
    cfg = config.load(root=write_project(tmp_path, "analysis:\n  seed: 7\n"), profile="")
    assert cfg["seed"] == 7
    assert cfg["roles"] == list(config.ROLES)
    assert cfg["tiny"]["n_layer"] == config.DEFAULTS["tiny"]["n_layer"]


def test_profile_overrides_nested_keys_and_keeps_the_rest(tmp_path):
    root = write_project(tmp_path, "analysis:\n  tiny:\n    n_layer: 6\n    d_model: 64\n",
                         quick="analysis:\n  tiny:\n    d_model: 32\n  roles: [qkv]\n")
    cfg = config.load(root=root, profile="quick")
    assert cfg["tiny"]["n_layer"] == 6 and cfg["tiny"]["d_model"] == 32
    assert cfg["roles"] == ["qkv"]
    assert cfg["profiles"] == ["quick"]


def test_quarto_profile_environment_variable_selects_the_profile(tmp_path, monkeypatch):
    root = write_project(tmp_path, "analysis:\n  seed: 1\n", a="analysis:\n  seed: 2\n", b="analysis:\n  seed: 3\n")
    monkeypatch.setenv("QUARTO_PROFILE", "a,b")
    # The first profile named wins, as in Quarto (it merges profile files in reverse order).
    assert config.load(root=root)["seed"] == 2


def test_unknown_setting_is_named_with_its_file(tmp_path):
    root = write_project(tmp_path, "analysis:\n  tiny:\n    n_layers: 4\n")
    with pytest.raises(config.ConfigError, match=r"_quarto.yml: analysis.tiny: unknown setting 'n_layers'"):
        config.load(root=root, profile="")


def test_unknown_role_and_missing_profile_are_clear_errors(tmp_path):
    root = write_project(tmp_path, "analysis:\n  roles: [qkv, attention]\n")
    with pytest.raises(config.ConfigError, match="unknown role"):
        config.load(root=root, profile="")
    root2 = tmp_path / "p2"
    root2.mkdir()
    write_project(root2, "analysis: {}\n")
    with pytest.raises(config.ConfigError, match="_quarto-nope.yml does not exist"):
        config.load(root=root2, profile="nope")


def test_cache_dir_env_override_and_root_search(tmp_path, monkeypatch):
    root = write_project(tmp_path, "analysis: {}\n")
    (root / "report").mkdir()
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path / "elsewhere"))
    cfg = config.load(root=root / "report", profile="")
    assert cfg["root"] == str(root.resolve())
    assert cfg["cache_dir"] == str((tmp_path / "elsewhere").resolve())


def test_the_projects_own_settings_load():
    cfg = config.load(root=config.find_root(__file__), profile="")
    assert cfg["suite"] == "tiny"
    smoke = config.load(root=config.find_root(__file__), profile="smoke")
    assert smoke["tiny"]["train_steps"] < cfg["tiny"]["train_steps"]
    pythia = config.load(root=config.find_root(__file__), profile="pythia")
    assert pythia["suite"] == "hub"
    roles = config.run_roles(pythia)
    assert list(roles.values()).count("reference") == 1 and "treatment" in roles.values()
    assert list(roles.values()).count("replica") >= 2  # PolyPythia seed runs: the noise floor


def test_runs_are_declared_by_role_and_checked(tmp_path):
    def load(section):
        (tmp_path / "_quarto.yml").write_text(section)
        return config.load(root=tmp_path, profile="")

    cfg = load("analysis:\n  runs: {reference: a, treatment: b, replicas: [c, d]}\n  suite: folder\n  folder: x\n")
    assert config.run_roles(cfg) == {"a": "reference", "b": "treatment", "c": "replica", "d": "replica"}
    with pytest.raises(config.ConfigError, match="analysis.runs: a run appears in two roles"):
        load("analysis:\n  runs: {reference: a, replicas: [a]}\n  suite: folder\n  folder: x\n")
    with pytest.raises(config.ConfigError, match="analysis.runs: expected a mapping"):
        load("analysis:\n  runs: [a, b]\n  suite: folder\n  folder: x\n")
    with pytest.raises(config.ConfigError, match="tiny suite has no run"):
        load("analysis:\n  runs: {reference: a}\n")
    with pytest.raises(config.ConfigError, match="analysis.block"):
        load("analysis:\n  block: yes\n")  # YAML's yes is a bool, not block 1


def test_memory_settings_are_checked(tmp_path):
    root = write_project(tmp_path, "analysis:\n  memory: {device_fraction: 1.5}\n")
    with pytest.raises(config.ConfigError, match=r"analysis.memory.device_fraction: expected a number in \(0, 1\], got 1.5"):
        config.load(root=root, profile="")
    cfg = config.load(root=write_project(tmp_path, "analysis:\n  memory: {host_gib: 16}\n"), profile="")
    assert cfg["memory"] == {"device_fraction": 0.5, "host_gib": 16}


def test_depth_steps_setting_is_checked_and_picks_log_spaced_steps(tmp_path):
    from analysis.audit import pythia_schedule
    from analysis.checkpoints import CheckpointError, depth_steps

    for bad in ("some", 1, [], [1.5], True):
        root = write_project(tmp_path, f"analysis:\n  depth_steps: {bad!r}\n".replace("'", ""))
        with pytest.raises(config.ConfigError, match="analysis.depth_steps: expected 'auto', 'all', an integer >= 2"):
            config.load(root=root, profile="")
    steps = pythia_schedule()
    assert depth_steps("auto", "tiny", steps) == steps and depth_steps("all", "hub", steps) == steps
    picked = depth_steps(12, "hub", steps)
    assert picked == depth_steps("auto", "hub", steps) == [0, 4, 8, 32, 64, 256, 512, 2000, 6000, 17000, 49000, 143000]
    assert depth_steps([0, 1000], "hub", steps) == [0, 1000, 143000]  # the last step: where depth trends are judged
    with pytest.raises(CheckpointError, match=r"analysis.depth_steps: step\(s\) \[3\] are not among the analysed steps"):
        depth_steps([3], "hub", steps)
    assert config.load(profile="pythia")["depth_steps"] == 12


def test_architectures_are_declared_apart_from_run_roles_and_checked(tmp_path):
    def load(section):
        (tmp_path / "_quarto.yml").write_text("analysis:\n" + section)
        return config.load(root=tmp_path, profile="")

    own = config.load(root=config.find_root(__file__), profile="")
    assert own["architectures"] == {"parallel": ["raw", "raw-seed2"], "sequential": ["seq", "seq-seed2"]}
    assert not set(config.run_roles(own)) & {"seq", "seq-seed2"}  # no other chapter reads them
    assert load("  seed: 1\n")["architectures"] == {}  # no comparison unless asked for
    ok = "  architectures: {parallel: [raw, raw-seed2], sequential: [seq, seq-seed2]}\n"
    assert load(ok)["architectures"]["sequential"] == ["seq", "seq-seed2"]
    with pytest.raises(config.ConfigError, match=r"analysis.architectures.sequential: expected a list of at least two"):
        load("  architectures: {parallel: [raw, raw-seed2], sequential: [seq]}\n")
    with pytest.raises(config.ConfigError, match=r"analysis.architectures.sequential: run 'raw-seed2' is 'parallel'"):
        load("  architectures: {parallel: [raw, deduped], sequential: [seq, raw-seed2]}\n")
    with pytest.raises(config.ConfigError, match=r"must share their data"):
        load("  architectures: {parallel: [raw, deduped], sequential: [seq, seq-seed2]}\n")
    with pytest.raises(config.ConfigError, match=r"tiny suite has no run 'gpt2'"):
        load("  architectures: {parallel: [raw, raw-seed2], sequential: [seq, gpt2]}\n")
    with pytest.raises(config.ConfigError, match=r"a run is listed twice"):
        load("  architectures: {parallel: [raw, raw-seed2], sequential: [raw, seq-seed2]}\n")
    # The comparison is paired: twins at one position share seed and data; seeds differ within one wiring.
    with pytest.raises(config.ConfigError, match=r"parallel run 'raw' \(seed \d+\) and sequential run 'seq-seed2' \(seed \d+\) are at the same"):
        load("  architectures: {parallel: [raw, raw-seed2], sequential: [seq-seed2, seq]}\n")
    with pytest.raises(config.ConfigError, match=r"must list as many runs"):
        load("  architectures: {parallel: [raw, raw-seed2, deduped], sequential: [seq, seq-seed2]}\n")
    twins = ("  tiny:\n    runs: {raw: {data: raw, seed: 1}, deduped: {data: deduped, seed: 1}, r2: {data: raw, seed: 1}, "
             "seq: {data: raw, seed: 1, arch: sequential}, s2: {data: raw, seed: 1, arch: sequential}}\n"
             "  runs: {reference: raw, treatment: deduped, replicas: [r2]}\n")
    with pytest.raises(config.ConfigError, match=r"analysis.architectures.parallel: runs \['raw', 'r2'\] repeat a seed"):
        load(twins + "  architectures: {parallel: [raw, r2], sequential: [seq, s2]}\n")
    # A sequential run in a run role would be judged as seed or data noise: refused.
    with pytest.raises(config.ConfigError, match=r"the replica 'seq' is 'sequential' but the reference 'raw' is 'parallel'"):
        load("  runs: {reference: raw, treatment: deduped, replicas: [raw-seed2, seq]}\n")
    with pytest.raises(config.ConfigError, match=r"analysis.tiny.runs.x: expected"):
        load("  tiny:\n    runs: {x: {data: raw, seed: 1, arch: gpt2}}\n  runs: {reference: x}\n")


@pytest.mark.parametrize("init,match", [
    ("{seeds: [1]}", r"analysis\.init\.seeds: expected a list of at least two different integers"),
    ("{seeds: [1, 1]}", r"analysis\.init\.seeds"),
    ("{eval_every: 0}", r"analysis\.init\.eval_every: expected a positive integer"),
    ("{train_steps: 16, eval_every: 32, warmup_steps: 2}", r"analysis\.init\.eval_every: expected at most init\.train_steps \(16\)"),
    ("{train_steps: 16, warmup_steps: 16}", r"analysis\.init\.warmup_steps: expected an integer in \[1, init\.train_steps\)"),
])
def test_bad_init_settings_are_errors_naming_the_setting(tmp_path, init, match):
    (tmp_path / "_quarto.yml").write_text(f"analysis:\n  init: {init}\n")
    with pytest.raises(config.ConfigError, match=match):
        config.load(root=tmp_path, profile="")


@pytest.mark.parametrize("shares", ["[1.5]", "0.25", "[0]", "[quarter]"])
def test_checkpoint_shares_must_be_shares_of_training(tmp_path, shares):
    (tmp_path / "_quarto.yml").write_text(f"analysis:\n  tiny: {{checkpoint_shares: {shares}}}\n")
    with pytest.raises(config.ConfigError, match=r"analysis\.tiny\.checkpoint_shares: expected a list of shares"):
        config.load(root=tmp_path, profile="")


def test_checkpoint_shares_must_hold_the_forms_early_line(tmp_path):
    (tmp_path / "_quarto.yml").write_text("analysis:\n  verdicts: {formed_by: 0.3}\n")
    with pytest.raises(config.ConfigError, match=r"analysis\.tiny\.checkpoint_shares: \[0\.25\] lacks verdicts\.formed_by \(0\.3\)"):
        config.load(root=tmp_path, profile="")
    (tmp_path / "_quarto.yml").write_text("analysis:\n  verdicts: {formed_by: 0.3}\n  tiny: {checkpoint_shares: [0.3]}\n")
    assert config.load(root=tmp_path, profile="")["tiny"]["checkpoint_shares"] == [0.3]


@pytest.mark.parametrize("tiny", ["{linear_every: 0}", "{train_steps: -5}", "{train_steps: 7.5}"])
def test_tiny_step_settings_must_be_positive_integers(tmp_path, tiny):
    (tmp_path / "_quarto.yml").write_text(f"analysis:\n  tiny: {tiny}\n")
    with pytest.raises(config.ConfigError, match=r"analysis\.tiny\.(linear_every|train_steps): expected a positive integer"):
        config.load(root=tmp_path, profile="")
