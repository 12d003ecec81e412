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
    with pytest.raises(ValueError, match="multiple of scale_factor \\* patch_size \\(2 \\* 8\\)"):
        TinyPolicyConfig(image_size=60, patch_size=8)


def test_smolvla_base_preset_has_the_real_sizes(tmp_path):
    """SmolVLA's architecture (SmolVLM2-500M backbone cut to 16 layers), checked without weights."""
    from vla_ros.policy.tiny import write_tiny_backbone

    config = TinyPolicyConfig.smolvla_base()
    assert config.image_seq_len == 64  # (512 / 16 / 4)^2 image tokens per camera
    assert (config.text_layers, config.backbone_text_layers, config.expert_width_multiplier) == (16, 32, 0.75)
    assert (config.num_steps, config.chunk_size, config.tokenizer_max_length) == (10, 50, 48)
    assert TinyPolicyConfig.from_options({"preset": "smolvla_base"}) == config
    assert TinyPolicyConfig.from_options({"preset": "smolvla_base", "num_steps": 5}).num_steps == 5
    with pytest.raises(ValueError, match="unknown preset 'pi0'"):
        TinyPolicyConfig.from_options({"preset": "pi0"})

    write_tiny_backbone(tmp_path, config)
    backbone = json.loads((tmp_path / "config.json").read_text())
    vision, text = backbone["vision_config"], backbone["text_config"]
    assert backbone["scale_factor"] == 4
    assert (vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"],
            vision["num_attention_heads"], vision["image_size"], vision["patch_size"]) == (768, 3072, 12, 12, 512, 16)
    assert (text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"],
            text["num_attention_heads"], text["num_key_value_heads"], text["vocab_size"]) == (960, 2560, 32, 15, 5, 49280)
    processor = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor["image_seq_len"] == 64


def test_smolvla_base_structure_builds_and_runs(tmp_path, robot_dims):
    """The preset's widths with few layers: a real checkpoint whose shapes are SmolVLA's."""
    import numpy as np
    import torch

    from vla_ros.policy.loading import load_policy
    from vla_ros.policy.runtime import PolicyRuntime
    from vla_ros.policy.tiny import build_tiny_checkpoint

    config = TinyPolicyConfig.smolvla_base(vision_layers=1, text_layers=2, backbone_text_layers=4,
                                           text_vocab_size=None, num_steps=2)
    directory = build_tiny_checkpoint(robot_dims, config, tmp_path / "ckpt")
    saved = json.loads((directory / "config.json").read_text())
    assert (saved["num_vlm_layers"], saved["num_expert_layers"], saved["self_attn_every_n_layers"]) == (2, -1, 2)
    assert saved["resize_imgs_with_padding"] == [512, 512]

    runtime = PolicyRuntime(load_policy(directory, device="cpu", dtype="float32"), num_threads=1)
    vlm_with_expert = runtime.loaded.policy.model.vlm_with_expert
    assert len(vlm_with_expert.get_vlm_model().text_model.layers) == 2  # cut from the backbone's 4
    assert vlm_with_expert.expert_hidden_size == 720 and len(vlm_with_expert.lm_expert.layers) == 2
    with torch.inference_mode():
        tokens = vlm_with_expert.embed_image(torch.zeros(1, 3, 512, 512))
    assert tuple(tokens.shape) == (1, 64, 960)
    images = {key: np.zeros((480, 640, 3), np.uint8) for key in runtime.image_keys}
    actions = runtime.predict_chunk(images, np.zeros(6, np.float32), "pick up the red cube", seed=0)
    assert actions.shape == (50, 6) and np.isfinite(actions).all()


def test_new_fields_at_their_defaults_keep_the_tiny_build(robot_dims, tiny_config, tmp_path):
    """Fields added for the full-size preset do not rename existing tiny builds."""
    from vla_ros.policy.tiny import tiny_spec

    assert "scale_factor" not in tiny_spec(robot_dims, tiny_config)["config"]
    assert tiny_checkpoint_dir(robot_dims, replace(tiny_config, scale_factor=2), tmp_path) == \
        tiny_checkpoint_dir(robot_dims, tiny_config, tmp_path)
    assert tiny_checkpoint_dir(robot_dims, replace(tiny_config, text_intermediate_size=256), tmp_path) != \
        tiny_checkpoint_dir(robot_dims, tiny_config, tmp_path)
    with pytest.raises(ValueError, match="multiple of scale_factor \\* patch_size"):
        TinyPolicyConfig(image_size=64, patch_size=8, scale_factor=3)
