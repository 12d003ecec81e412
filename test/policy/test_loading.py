"""Checkpoints: hub ids and local directories through one path; every failure names what to fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vla_ros.policy.errors import CheckpointError
from vla_ros.policy.loading import load_policy, resolve_checkpoint
from vla_ros.policy.variants import load_variant

HUB_ID = "Sythen/my_smolvla_training_fm"


@pytest.fixture
def tiny_copy(tiny_dir, tmp_path):
    """A copy of the tiny checkpoint to damage (its backbone stays where config.json says)."""
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, copy, ignore=shutil.ignore_patterns("backbone"))
    return copy


def test_local_directory_loads_like_any_checkpoint(tiny_dir, robot_dims):
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    assert resolve_checkpoint(str(tiny_dir)) == tiny_dir
    loaded = load_policy(resolve_checkpoint(tiny_dir), device="cpu")
    assert isinstance(loaded.policy, SmolVLAPolicy) and not loaded.policy.training
    assert (loaded.device, loaded.dtype, loaded.checkpoint_dir) == ("cpu", "float32", tiny_dir)
    assert tuple(loaded.config.image_features) == robot_dims.image_keys


def test_lerobot_training_output_layout(tiny_dir, tmp_path):
    step_dir = tmp_path / "checkpoints" / "last"
    step_dir.mkdir(parents=True)
    (step_dir / "pretrained_model").symlink_to(tiny_dir)
    assert resolve_checkpoint(step_dir) == step_dir / "pretrained_model"


def test_hub_id_offline_is_one_clear_error(hub_offline):
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(HUB_ID)
    assert str(err.value) == (
        f"checkpoint '{HUB_ID}' not found locally and HF_HUB_OFFLINE is set; pass checkpoint:=<dir> "
        "(a LeRobot checkpoint directory with config.json and model.safetensors)"
    )


def test_hub_id_with_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(CheckpointError, match=f"checkpoint '{HUB_ID}' not found locally and the hub is "
                                              "unreachable; pass checkpoint:=<dir>"):
        resolve_checkpoint(HUB_ID, timeout=2.0)


def test_nonexistent_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CheckpointError, match=f"checkpoint directory '{missing}' does not exist; pass checkpoint:="):
        resolve_checkpoint(str(missing))


def test_directory_without_weights(tiny_copy):
    (tiny_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        resolve_checkpoint(tiny_copy)
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        load_policy(tiny_copy)


@pytest.mark.parametrize("keep", [1000, 0.5])
def test_corrupt_safetensors(tiny_copy, keep):
    weights = tiny_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])  # truncated copy
    with pytest.raises(CheckpointError, match=f"{weights}: cannot be read as safetensors .*corrupt or truncated"):
        load_policy(tiny_copy, device="cpu")


@pytest.mark.parametrize("content, needle", [
    (b"", "the file is empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 1384296\n", "a Git LFS pointer"),
])
def test_empty_or_lfs_pointer_weights(tiny_copy, content, needle):
    weights = tiny_copy / "model.safetensors"
    weights.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{weights}: {needle}"):
        load_policy(tiny_copy, device="cpu")


def test_config_without_action_feature(tiny_copy):
    config = tiny_copy / "config.json"
    data = json.loads(config.read_text())
    del data["output_features"]["action"]
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"{config}: has no 'action' output feature"):
        load_policy(tiny_copy, device="cpu")


def test_config_json_written_by_hand_for_act(tiny_copy):
    config = tiny_copy / "config.json"
    config.write_text(json.dumps({"type": "act", "chunk_size": 100}))
    with pytest.raises(CheckpointError) as err:
        load_policy(tiny_copy, device="cpu")
    assert str(err.value) == (f"{config}: policy type 'act', but vla_ros runs SmolVLA checkpoints (type 'smolvla'); "
                              "pass checkpoint:=<dir> of a SmolVLA checkpoint")


def test_checkpoint_for_a_robot_with_another_dof(tmp_path, tiny_config, robot_dims, hub_offline):
    """A real tiny checkpoint built for a 5-joint arm, loaded for the 6-joint robot."""
    from vla_ros.policy.errors import PolicyMismatchError
    from vla_ros.policy.robot_dims import RobotDims
    from vla_ros.policy.runtime import make_runtime
    from vla_ros.policy.tiny import ensure_tiny_checkpoint

    five = RobotDims.from_limits(lower=[-1.0] * 5, upper=[1.0] * 5, image_keys=robot_dims.image_keys)
    directory = ensure_tiny_checkpoint(five, tiny_config, root=tmp_path / "models")
    with pytest.raises(PolicyMismatchError) as err:
        make_runtime("tiny", checkpoint=str(directory), device="cpu", robot_dims=robot_dims, warmup=False)
    message = str(err.value)
    assert str(directory / "config.json") in message
    assert "state dimension: policy 5, robot 6" in message and "action dimension: policy 5, robot 6" in message
    assert "checkpoint:=<dir>" in message


def test_config_of_another_policy_type(tiny_copy):
    from lerobot.policies.act.configuration_act import ACTConfig

    (tiny_copy / "config.json").unlink()
    ACTConfig()._save_pretrained(tiny_copy)  # a real ACT config.json
    with pytest.raises(CheckpointError, match=f"{tiny_copy / 'config.json'}: policy type 'act', but vla_ros "
                                              "runs SmolVLA checkpoints"):
        load_policy(tiny_copy, device="cpu")


def test_checkpoint_without_processors_says_how_to_migrate(tiny_copy):
    (tiny_copy / "policy_preprocessor.json").unlink()
    with pytest.raises(CheckpointError, match="no policy_preprocessor.json.*migrate_policy_normalization"):
        load_policy(tiny_copy, device="cpu")


def test_missing_backbone_names_it(tiny_copy, tmp_path):
    config = tiny_copy / "config.json"
    data = json.loads(config.read_text())
    data["vlm_model_name"] = str(tmp_path / "gone" / "backbone")
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="vlm_model_name .* no backbone folder"):
        load_policy(tiny_copy, device="cpu")


def test_distilled_missing_says_how_to_make_it(monkeypatch, tmp_path, hub_offline):
    from vla_ros.policy.runtime import make_runtime

    monkeypatch.setenv("VLA_ROS_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        make_runtime("distilled")
    message = str(err.value)
    assert str(tmp_path / "models" / "distilled") in message
    assert "vla-ros distill --teacher" in message and "checkpoint:=<dir>" in message


def test_hub_variant_offline_through_make_runtime(hub_offline):
    from vla_ros.policy.runtime import make_runtime

    with pytest.raises(CheckpointError, match="checkpoint 'Sythen/my_smolvla_training_frozen' not found locally"):
        make_runtime("frozen")
    assert load_variant("frozen").checkpoint == "Sythen/my_smolvla_training_frozen"


def test_unavailable_device(tiny_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device 'cuda' requested but CUDA is not available"):
        load_policy(tiny_dir, device="cuda")


def test_hub_id_from_the_local_cache_offline(hub_offline, tiny_dir):
    """A hub id already in the Hugging Face cache resolves offline and loads by the same path."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / "models--vla-ros--tiny"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_dir, repo / "snapshots" / revision)
    directory = resolve_checkpoint("vla-ros/tiny")
    assert directory == repo / "snapshots" / revision
    assert load_policy(directory, device="cpu").config.chunk_size == 50
