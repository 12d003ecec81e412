"""The embedded tiny policy: a real LeRobot checkpoint, built offline, deterministically, atomically."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from vla_ros.policy.tiny import BACKBONE_DIRNAME, TinyPolicyConfig, tiny_checkpoint_dir

ROOT = Path(__file__).resolve().parents[2]

BUILD = """
import sys
from vla_ros.policy.robot_dims import RobotDims
from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint
dims = RobotDims(**%(dims)s)
print(ensure_tiny_checkpoint(dims, TinyPolicyConfig(**%(config)s), root=sys.argv[1]))
"""


def test_is_a_lerobot_checkpoint_directory(tiny_dir, robot_dims):
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json",
                 "policy_preprocessor_step_5_normalizer_processor.safetensors",
                 "policy_postprocessor_step_0_unnormalizer_processor.safetensors"):
        assert (tiny_dir / name).is_file(), name
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["type"] == "smolvla" and config["load_vlm_weights"] is False
    assert config["vlm_model_name"] == str(tiny_dir / BACKBONE_DIRNAME)
    assert config["num_expert_layers"] == -1  # fewer expert layers crash LeRobot 0.4.4 at inference
    assert config["input_features"]["observation.state"]["shape"] == [robot_dims.state_dim]
    assert set(config["input_features"]) == {"observation.state", *robot_dims.image_keys}
    assert config["output_features"]["action"]["shape"] == [robot_dims.action_dim]
    assert not list(tiny_dir.parent.glob(".*.tmp")), "temporary build directories left behind"


def test_loads_with_plain_lerobot(tiny_dir, robot_dims):
    """No vla_ros code involved: LeRobot's own loaders accept the directory."""
    import torch
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    policy = SmolVLAPolicy.from_pretrained(tiny_dir)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(tiny_dir))
    batch = {key: torch.rand(3, 48, 64) for key in robot_dims.image_keys}
    batch.update({"observation.state": torch.zeros(robot_dims.state_dim), "task": "pick up the cube"})
    with torch.inference_mode():
        actions = post(policy.predict_action_chunk(pre(batch)))
    assert actions.shape == (1, 50, robot_dims.action_dim) and torch.isfinite(actions).all()


def test_racing_builds_are_atomic_and_deterministic(tmp_path, tiny_dir, robot_dims, tiny_config):
    """Two processes build the same model into a fresh cache at once: one directory, same bytes."""
    script = BUILD % {"dims": robot_dims.__dict__, "config": tiny_config.__dict__}
    root = tmp_path / "models"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    built = {Path(out.strip().splitlines()[-1]) for out, _ in outputs}
    assert built == {root / tiny_dir.name}, built
    assert [p.name for p in root.iterdir()] == [tiny_dir.name]  # no temporary directory left
    (new,) = built
    for name in ("model.safetensors", "policy_preprocessor_step_5_normalizer_processor.safetensors",
                 f"{BACKBONE_DIRNAME}/tokenizer.json", f"{BACKBONE_DIRNAME}/config.json"):
        assert (new / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_the_name_changes_with_what_it_is_built_from(robot_dims, tiny_config, tmp_path):
    base = tiny_checkpoint_dir(robot_dims, tiny_config, tmp_path)
    assert base == tiny_checkpoint_dir(robot_dims, tiny_config, tmp_path)
    assert base != tiny_checkpoint_dir(replace(robot_dims, image_keys=("observation.images.front",)),
                                       tiny_config, tmp_path)
    assert base != tiny_checkpoint_dir(replace(robot_dims, state_std=(1.0,) * 6), tiny_config, tmp_path)
    assert base != tiny_checkpoint_dir(robot_dims, replace(tiny_config, seed=1), tmp_path)


def test_config_options_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        TinyPolicyConfig.from_options({"layers": 3})
    with pytest.raises(ValueError, match="multiple of 2 \\* patch_size"):
        TinyPolicyConfig(image_size=60, patch_size=8)
