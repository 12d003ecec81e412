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


def test_load_options_and_device_blocks(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "checkpoint: a/b\ndtype: auto\ncpu_bf16: true\nnum_steps: 8\n"
        "cpu:\n  num_steps: 5\n  image_size: 256\ncuda:\n  dtype: bfloat16\n"
    )
    variant = load_variant("mine", models_dir=tmp_path)
    assert (variant.cpu_bf16, variant.num_steps, variant.image_size) == (True, 8, None)
    on_cpu = variant.for_device("cpu")
    assert (on_cpu.num_steps, on_cpu.image_size, on_cpu.dtype) == (5, 256, "auto")
    on_gpu = variant.for_device("cuda:1")
    assert (on_gpu.num_steps, on_gpu.image_size, on_gpu.dtype) == (8, None, "bfloat16")
    assert variant.for_device("mps") == variant
    # launch overrides win over the file and its per-device blocks
    forced = load_variant("mine", models_dir=tmp_path, num_steps_override=10, dtype_override="float32")
    assert forced.for_device("cpu").num_steps == 10 and forced.for_device("cpu").image_size == 256
    assert forced.for_device("cuda").dtype == "float32"
    kept = load_variant("mine", models_dir=tmp_path, num_steps_override=0, image_size_override=None)
    assert kept.for_device("cpu").num_steps == 5


@pytest.mark.parametrize("text, needle", [
    ("checkpoint: a/b\nnum_steps: 0\n", "num_steps: expected an integer >= 1"),
    ("checkpoint: a/b\nnum_steps: 2.5\n", "num_steps: expected an integer >= 1"),
    ("checkpoint: a/b\nimage_size: large\n", "image_size: expected an image side in pixels"),
    ("checkpoint: a/b\ncpu_bf16: maybe\n", "cpu_bf16: expected true or false"),
    ("checkpoint: a/b\ncpu:\n  checkpoint: c/d\n", "cpu: unknown field(s) checkpoint"),
    ("checkpoint: a/b\ncpu: fast\n", "'cpu' must be a mapping"),
    ("checkpoint: a/b\ncuda:\n  dtype: fp8\n", "cuda: dtype: invalid dtype 'fp8'"),
])
def test_bad_load_options_name_the_field(tmp_path, text, needle):
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(ValueError) as err:
        load_variant("mine", models_dir=tmp_path)
    assert needle in str(err.value) and "mine.yaml" in str(err.value)


def test_bad_overrides_name_the_override():
    with pytest.raises(ValueError, match="dtype override: invalid dtype 'half'"):
        load_variant("full", dtype_override="half")
    with pytest.raises(ValueError, match="image_size override: expected an image side"):
        load_variant("full", image_size_override=-512)
    with pytest.raises(ValueError, match="num_steps override"):
        load_variant("full", num_steps_override=-2)


def test_full_size_variants_allow_bf16_on_cpu():
    """The SmolVLA variants let dtype auto pick bf16 on a CPU with native bf16; tiny stays float32."""
    for name in ("full", "frozen", "l1", "distilled"):
        variant = load_variant(name)
        assert variant.dtype == "auto" and variant.cpu_bf16, name
    tiny = load_variant("tiny")
    assert tiny.dtype == "float32" and not tiny.cpu_bf16
