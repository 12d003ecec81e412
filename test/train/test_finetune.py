"""vla-ros finetune: the three strategies, checkpoints, resumption, losses, and the result loads."""
import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla_ros.train.finetune import STRATEGIES, finetune
from vla_ros.train.loop import RunOptions

VISION = "model.vlm_with_expert.vlm.model.vision_model.encoder.layers.0.mlp.fc1.weight"
TEXT = "model.vlm_with_expert.vlm.model.text_model.layers.0.mlp.up_proj.weight"
EXPERT = "model.vlm_with_expert.lm_expert.layers.0.mlp.up_proj.weight"


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_strategy_trains_what_it_should_and_loads_in_the_runtime(strategy, tmp_path, dataset_dir, tiny_init,
                                                                   so100_dims):
    from vla_ros.policy.runtime import load_runtime
    from vla_ros.policy.variants import load_variant

    out = tmp_path / strategy
    result = finetune(dataset_dir, strategy, RunOptions(out, steps=3, batch_size=4, lr=1e-3, progress=False),
                      init=str(tiny_init), device="cpu")
    before, after = load_file(str(tiny_init / "model.safetensors")), load_file(str(result.model_dir / "model.safetensors"))
    assert not torch.equal(before[EXPERT], after[EXPERT]) and not torch.equal(before[TEXT], after[TEXT])
    assert torch.equal(before[VISION], after[VISION]) == (strategy == "frozen-vision")

    rows = list(csv.DictReader(open(out / "losses.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(np.isfinite(float(r["loss"])) for r in rows)
    assert (out / "loss.png").stat().st_size > 0
    assert (out / "checkpoints" / "last" / "training_state" / "training_step.json").is_file()

    variant = load_variant(STRATEGIES[strategy].variant, checkpoint_override=str(out))
    runtime = load_runtime(variant, so100_dims)
    assert runtime.loaded.config.freeze_vision_encoder == (strategy == "frozen-vision")
    assert runtime.loaded.config.vlm_model_name == str(out / "backbone")
    images = {k: np.full((48, 64, 3), 90, np.uint8) for k in so100_dims.image_keys}
    chunk = runtime.predict_chunk(images, np.zeros(6, np.float32), "pick up the red cube", seed=0)
    assert chunk.shape == (10, 6) and np.all(np.isfinite(chunk))


def test_resume_continues_from_the_last_checkpoint(tmp_path, dataset_dir, tiny_init):
    out = tmp_path / "run"
    options = dict(batch_size=2, lr=1e-3, save_freq=1, progress=False)
    finetune(dataset_dir, "l1", RunOptions(out, steps=2, **options), init=str(tiny_init), device="cpu")
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        finetune(dataset_dir, "l1", RunOptions(out, steps=4, **options), init=str(tiny_init), device="cpu")
    result = finetune(dataset_dir, "l1", RunOptions(out, steps=4, resume=True, **options),
                      init=str(tiny_init), device="cpu")
    assert result.start_step == 2 and result.steps == 4
    assert [int(r["step"]) for r in csv.DictReader(open(out / "losses.csv"))] == [1, 2, 3, 4]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["000001", "000002", "000003", "000004", "last"]


def test_bad_inputs_say_what_to_do(tmp_path, dataset_dir, tiny_init, so100_dims):
    from vla_ros.policy import RobotDims
    from vla_ros.policy.tiny import TinyPolicyConfig, ensure_tiny_checkpoint

    with pytest.raises(ValueError, match="is not a LeRobotDataset"):
        finetune(tmp_path, "flow", RunOptions(tmp_path / "o", steps=1), init=str(tiny_init), device="cpu")
    with pytest.raises(ValueError, match="--strategy 'adam'"):
        finetune(dataset_dir, "adam", RunOptions(tmp_path / "o", steps=1), init=str(tiny_init), device="cpu")
    other = RobotDims(state_dim=14, action_dim=14, image_keys=("observation.images.top",), image_shape=(3, 48, 64))
    aloha_like = ensure_tiny_checkpoint(other, TinyPolicyConfig(chunk_size=10), root=tmp_path / "models")
    with pytest.raises(ValueError, match=r"'observation.state' has shape \(6,\), the policy \(14,\)"):
        finetune(dataset_dir, "flow", RunOptions(tmp_path / "o2", steps=1), init=str(aloha_like), device="cpu")


def test_a_rosbag_is_converted_then_trained_on(tmp_path, tiny_init):
    from vla_ros.eval.synthetic import write_session

    bag = write_session(tmp_path / "session", "so100", seconds=0.6).path
    with pytest.raises(ValueError, match="is a rosbag: pass --robot"):
        finetune(bag, "flow", RunOptions(tmp_path / "o", steps=1), init=str(tiny_init), device="cpu")
    result = finetune(bag, "flow", RunOptions(tmp_path / "run", steps=1, batch_size=2, progress=False),
                      init=str(tiny_init), device="cpu", robot="so100")
    assert (tmp_path / "run" / "dataset" / "meta" / "info.json").is_file()
    assert (result.model_dir / "model.safetensors").is_file()
