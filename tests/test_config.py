from __future__ import annotations

import pytest

from authface.config import ConfigError, RestoreConfig, all_keys, load_config


def test_defaults_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sampler:\n  steps: 30\n  strength: 0.5\nface:\n  upscale: 2\n")
    cfg = load_config(RestoreConfig, f, ["sampler.steps=12", "face.max_faces=3", "model.lora=null"])
    assert cfg.sampler.steps == 12 and cfg.sampler.strength == 0.5 and cfg.face.upscale == 2
    assert cfg.face.max_faces == 3 and cfg.model.lora is None
    assert cfg.sampler.cfg_scale == RestoreConfig().sampler.cfg_scale


@pytest.mark.parametrize(
    "override, suggestion",
    [("sampler.stpes=3", "sampler.steps"), ("face.upscal=2", "face.upscale"), ("stpes=3", "sampler.steps")],
)
def test_unknown_keys_suggest_closest(override, suggestion):
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        load_config(RestoreConfig, None, [override])


def test_unknown_key_in_file_names_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("sampler:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*sampler\.steps"):
        load_config(RestoreConfig, f)


@pytest.mark.parametrize(
    "override, match",
    [
        ("sampler.steps=abc", "integer"),
        ("sampler.steps=2.5", "integer"),
        ("sampler.strength=0", r"\(0, 1\]"),
        ("face.crop_size=100", "multiple of 8"),
        ("sampler.color_fix=sepia", "wavelet"),
        ("io.overwrite=maybe", "true or false"),
        ("sampler=3", "mapping"),
        ("nonsense", "key=value"),
    ],
)
def test_bad_values(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(RestoreConfig, None, [override])


def test_all_keys_lists_leaves():
    keys = all_keys(RestoreConfig)
    assert "sampler.steps" in keys and "face.crop_size" in keys and "model" not in keys


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "restore"
    files = sorted(root.glob("*.yaml"))
    assert files, "configs/restore/*.yaml missing"
    for f in files:
        load_config(RestoreConfig, f)


def test_shipped_train_configs_load_and_train_checks():
    from pathlib import Path

    from authface.config import TrainConfig

    root = Path(__file__).resolve().parents[1] / "configs" / "train"
    for f in sorted(root.glob("*.yaml")):
        load_config(TrainConfig, f)
    with pytest.raises(ConfigError, match="facial.mode"):
        load_config(TrainConfig, None, ["facial.mode=cosine"])
    with pytest.raises(ConfigError, match="nothing to train"):
        load_config(TrainConfig, None, ["model.train_lora=false", "model.train_controlnet=false"])
    with pytest.raises(ConfigError, match="did you mean 'optim.learning_rate'"):
        load_config(TrainConfig, None, ["optim.learning_rat=1e-4"])


def test_renamed_key_still_works_with_a_warning(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("sampler:\n  guidance_scale: 2.5\n")
    with pytest.warns(FutureWarning, match="sampler.cfg_scale"):
        cfg = load_config(RestoreConfig, f)
    assert cfg.sampler.cfg_scale == 2.5


@pytest.mark.parametrize(
    "override, message",
    [
        ("sampler.color_fix=wavlet", "did you mean 'wavelet'"),
        ("face.detector=yunett", "one of dlib, dlib-mmod, yunet, insightface"),
        ("model.offload=everything", "model.offload must be one of none, model, sequential"),
    ],
)
def test_literal_choices_are_checked_by_type(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RestoreConfig, None, [override])


def test_choices_come_from_the_literal_types():
    from authface.config import ColorFix, choices

    assert choices(ColorFix) == ("none", "wavelet", "adain")


def test_a_misspelt_section_gets_a_suggestion_for_the_whole_key():
    from authface.config import ConfigError, RestoreConfig, load_config

    with pytest.raises(ConfigError, match="unknown config key 'fase.crop_size'; did you mean 'face.crop_size'"):
        load_config(RestoreConfig, None, ["fase.crop_size=64"])
