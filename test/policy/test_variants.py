"""Model variants are data: config/models/*.yaml -> ModelVariant (no torch needed)."""
from __future__ import annotations

import pytest

from vla_ros.policy.variants import ModelVariant, available_variants, load_variant

HUB_IDS = {
    "full": "Sythen/my_smolvla_training_fm",
    "frozen": "Sythen/my_smolvla_training_frozen",
    "l1": "Sythen/my_smolvla_training_l1",
}


def test_the_shipped_variants():
    assert {"full", "frozen", "l1", "distilled", "tiny"} <= set(available_variants())
    for name, hub_id in HUB_IDS.items():
        variant = load_variant(name)
        assert isinstance(variant, ModelVariant)
        assert (variant.name, variant.checkpoint, variant.builds_offline) == (name, hub_id, False)
        assert variant.description and variant.source.name == f"{name}.yaml"
    tiny = load_variant("tiny")
    assert tiny.builds_offline and tiny.builder == "tiny" and tiny.checkpoint is None


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        load_variant("huge")
    message = str(err.value)
    assert "unknown model 'huge'" in message
    for name in available_variants():
        assert name in message


def test_overrides(tmp_path):
    variant = load_variant("frozen", checkpoint_override=str(tmp_path), device_override="cpu")
    assert (variant.checkpoint, variant.device) == (str(tmp_path), "cpu")
    assert load_variant("frozen", checkpoint_override="", device_override="").checkpoint == HUB_IDS["frozen"]
    assert not load_variant("tiny", checkpoint_override=str(tmp_path)).builds_offline
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        load_variant("full", device_override="tpu")


def test_distilled_lives_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VLA_ROS_CACHE", str(tmp_path))
    variant = load_variant("distilled")
    assert variant.checkpoint == str(tmp_path / "models" / "distilled")
    assert "vla-ros distill" in variant.missing_hint and "checkpoint:=" in variant.missing_hint


@pytest.mark.parametrize("text, needle", [
    ("checkpoint: a/b\nspeed: 3\n", "unknown field(s) speed"),
    ("checkpoint: a/b\ndtype: int8\n", "invalid dtype 'int8'"),
    ("checkpoint: a/b\ndevice: gpu\n", "invalid device 'gpu'"),
    ("description: nothing to load\n", "set 'checkpoint'"),
    ("builder: magic\n", "invalid builder 'magic'"),
    ("checkpoint: [a, b\n", "invalid YAML"),
])
def test_bad_files_name_the_file_and_field(tmp_path, text, needle):
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(ValueError) as err:
        load_variant("mine", models_dir=tmp_path)
    assert needle in str(err.value) and "mine.yaml" in str(err.value)
