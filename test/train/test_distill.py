"""vla-ros distill: a tiny teacher distilled into a shallower student that the policy node runs."""
import json
import time

import numpy as np
import pytest
import torch

from vla_ros.train.distill import distill
from vla_ros.train.loop import RunOptions
from vla_ros.train.objectives import Distillation, DistillWeights

WEIGHTS = DistillWeights(gt=1.0, velocity=1.0, attention=1.0)


def _terms(student, teacher, pairs, batch, noise, t):
    with torch.no_grad():
        _, terms = Distillation(student, teacher, WEIGHTS, pairs)(dict(batch), noise=noise, time=t)
    return terms


@pytest.fixture(scope="module")
def distilled(train_root, dataset_dir, teacher_run, teacher_policy):
    """Student: 2 of 4 VLM/expert layers, 1 of 2 vision layers, 32x32 instead of 64x64 images."""
    from vla_ros.train.data import open_dataset

    teacher = teacher_policy.policy
    ds = open_dataset(dataset_dir, teacher.config)
    batch = teacher_policy.preprocessor(torch.utils.data.default_collate([ds[i] for i in range(0, 48, 6)]))
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(8, teacher.config.chunk_size, teacher.config.max_action_dim, generator=g)
    t = torch.rand(8, generator=g) * 0.9 + 0.05
    before = {}

    def measure(student):
        from vla_ros.train.student import plan_student

        before["plan"] = plan_student(teacher, 2, None, 1, 32)
        before["terms"] = _terms(student, teacher, before["plan"].attention_pairs(), batch, noise, t)

    out = train_root / "distilled"
    result, plan = distill(str(teacher_run.model_dir), dataset_dir,
                           RunOptions(out, steps=12, batch_size=4, lr=1e-3, progress=False),
                           vlm_layers=2, vision_layers=1, image_size=32, weights=WEIGHTS, device="cpu",
                           student_hook=measure)
    return result, plan, before, (batch, noise, t)


def test_every_loss_term_decreases(distilled, teacher_policy):
    from vla_ros.policy.loading import load_policy

    result, plan, before, (batch, noise, t) = distilled
    assert plan.attention_pairs() == {0: 0, 1: 3}  # student layers 0, 1 <- teacher layers 0, 3
    student = load_policy(result.model_dir, device="cpu", dtype="float32").policy
    after = _terms(student, teacher_policy.policy, plan.attention_pairs(), batch, noise, t)
    for term in ("gt", "velocity", "attention"):
        assert after[term] < before["terms"][term], (term, before["terms"], after)
    logged = [row["attention"] for row in result.losses]
    assert len(logged) == 12 and all(np.isfinite(logged))


def test_student_checkpoint_has_its_own_config(distilled):
    result, plan, _, _ = distilled
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["num_vlm_layers"] == 2 and config["resize_imgs_with_padding"] == [32, 32]
    assert config["vlm_model_name"] == str(result.output / "backbone")
    backbone = json.loads((result.output / "backbone" / "config.json").read_text())
    assert backbone["text_config"]["num_hidden_layers"] == 2 and backbone["vision_config"]["num_hidden_layers"] == 1
    run = json.loads((result.output / "vla_ros_train.json").read_text())
    assert run["plan"]["vlm_layers"] == [0, 3] and run["weights"]["attention"] == 1.0


def test_teacher_is_unchanged_and_stays_in_eval_mode(teacher_policy, distilled):
    from safetensors.torch import load_file

    saved = load_file(str(teacher_policy.checkpoint_dir / "model.safetensors"))
    current = teacher_policy.policy.state_dict()
    assert all(torch.equal(saved[k], current[k]) for k in saved)


def test_distilled_student_runs_as_model_distilled_in_the_policy_node(distilled, so100_dims):
    from vla_ros.nodes.camera import CameraPublisher
    from vla_ros.nodes.policy import PolicyNode
    from vla_ros.nodes.state import StatePublisher
    from vla_ros.transport.inproc import Bus, InprocPort, spin_ports

    result = distilled[0]
    bus = Bus()
    ports = [
        InprocPort("state_publisher", parameters={"robot": "so100"}, bus=bus),
        InprocPort("camera_top", parameters={"camera_name": "top"}, bus=bus),
        InprocPort("camera_wrist", parameters={"camera_name": "wrist"}, bus=bus),
        InprocPort("policy_node", parameters={"robot": "so100", "model": "distilled",
                                              "checkpoint": str(result.output)}, bus=bus),
    ]
    nodes = [StatePublisher(ports[0]), CameraPublisher(ports[1]), CameraPublisher(ports[2]), PolicyNode(ports[3])]
    user = InprocPort("user", bus=bus)
    chunks, status = [], []
    user.subscribe("vla/action_chunk", "vla_ros/msg/ActionChunk", chunks.append)
    user.subscribe("vla/status", "vla_ros/msg/PolicyStatus", status.append)
    say = user.publisher("vla/instruction", "std_msgs/msg/String")
    ports.append(user)
    try:
        end = time.monotonic() + 120
        while nodes[3].runtime is None and time.monotonic() < end:
            spin_ports(ports, 0.2)
        assert nodes[3].runtime is not None, nodes[3].logic.message
        say.publish(user.new("std_msgs/msg/String", data="pick up the red cube"))
        end = time.monotonic() + 60
        while len(chunks) < 2 and time.monotonic() < end:
            spin_ports(ports, 0.2)
        assert len(chunks) >= 2
        c = chunks[-1]
        assert c.model_variant == "distilled" and (c.horizon, c.action_dim) == (10, 6)
        assert np.all(np.isfinite(np.asarray(c.actions)))
        assert status[-1].model_variant == "distilled"
    finally:
        for n in nodes:
            n.close()
        for p in ports:
            p.shutdown()


def test_cli_distills_with_fewer_expert_layers(tmp_path, dataset_dir, teacher_run, capsys):
    from vla_ros.cli import main

    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(teacher_run.model_dir), "--dataset", str(dataset_dir),
                 "--vlm-layers", "4", "--expert-layers", "2", "--steps", "2", "--batch-size", "2",
                 "--device", "cpu", "--output", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "expert layers [0, 3] of 4" in text and "self_attn_every_n_layers=4" in text
    assert "vla-ros launch --model distilled --checkpoint" in text
    assert (out / "pretrained_model" / "model.safetensors").is_file()
    code = main(["distill", "--teacher", str(teacher_run.model_dir), "--dataset", str(dataset_dir),
                 "--vlm-layers", "4", "--expert-layers", "3", "--steps", "1", "--output", str(tmp_path / "x")])
    assert code == 2 and "--expert-layers 3" in capsys.readouterr().err
