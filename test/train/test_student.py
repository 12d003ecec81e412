"""Student layouts: evenly chosen layers, LeRobot-runnable interleaving, clear errors."""
import pytest
import torch

from vla_ros.train.student import even_layers, expert_kinds, pick_layers, plan_student


def test_even_layers_is_round_linspace():
    assert even_layers(16, 4) == [0, 5, 10, 15]
    assert even_layers(16, 16) == list(range(16))
    assert even_layers(16, 1) == [0]
    with pytest.raises(ValueError):
        even_layers(4, 5)


def test_each_slot_keeps_a_teacher_layer_of_its_attention_kind():
    have = expert_kinds(16, "cross_attn", 2)  # SmolVLA: self-attention in even layers
    assert have[:4] == [True, False, True, False]
    for keep in (2, 4, 6, 8, 12):
        want = expert_kinds(keep, "cross_attn", 2)
        picks = pick_layers(16, keep, want, have)
        assert picks == sorted(set(picks)) and len(picks) == keep
        assert [have[i] for i in picks] == want
        # never more than one layer away from round(linspace)
        assert max(abs(a - b) for a, b in zip(picks, even_layers(16, keep))) <= 1
    assert pick_layers(16, 4, expert_kinds(4, "cross_attn", 2), have) == [0, 5, 10, 15]


def test_plan_checks_the_layout(teacher_policy):
    teacher = teacher_policy.policy  # 4 VLM + 4 expert layers, 2 vision layers, 64x64 images
    plan = plan_student(teacher, 2)
    assert plan.vlm_layers == plan.expert_layers == [0, 3] and plan.self_attn_every_n_layers == 2
    assert plan.num_expert_layers == -1 and plan.image_size == (64, 64) and plan.vision_layers == [0, 1]
    fewer = plan_student(teacher, 4, 2, vision_layers=1, image_size=32)
    assert fewer.num_expert_layers == 2 and fewer.self_attn_every_n_layers == 4 and fewer.notes
    assert fewer.vision_layers == [0] and fewer.image_size == (32, 32)
    for args, needle in (((5,), "--vlm-layers 5: the teacher has 4 VLM layers"),
                         ((4, 3), "--expert-layers 3"),
                         ((2, 4), "valid: [1, 2]"),
                         ((2, None, 3), "--vision-layers 3"),
                         ((2, None, None, 40), "--image-size 40: must be a multiple of 16")):
        with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            plan_student(teacher, *args)


@pytest.mark.parametrize("k, m", [(2, 2), (4, 2), (4, 1)])
def test_students_run_at_inference(teacher_policy, tmp_path, k, m):
    """Every accepted layout builds and samples a chunk in LeRobot (M < K included)."""
    from pathlib import Path

    import numpy as np
    from lerobot.policies.utils import prepare_observation_for_inference

    from vla_ros.train.student import build_student, plan_student

    teacher = teacher_policy.policy
    plan = plan_student(teacher, k, m)
    backbone = teacher.config.vlm_model_name
    student = build_student(teacher, plan, Path(backbone), tmp_path / "backbone")
    sd, td = student.state_dict(), teacher.state_dict()
    key = "model.vlm_with_expert.vlm.model.text_model.layers.1.mlp.up_proj.weight"
    assert torch.equal(sd[key], td[key.replace("layers.1.", f"layers.{plan.vlm_layers[1]}.")])
    obs = {key: np.zeros((48, 64, 3), np.uint8) for key in teacher.config.image_features}
    obs["observation.state"] = np.zeros(6, np.float32)
    batch = teacher_policy.preprocessor(prepare_observation_for_inference(obs, torch.device("cpu"), "pick"))
    with torch.inference_mode():
        actions = student.predict_action_chunk(batch)
    assert actions.shape == (1, 10, 6) and torch.isfinite(actions).all()
