"""The objectives compute what LeRobot computes, and the attention capture changes nothing."""
import torch

from vla_ros.train.objectives import (
    AttentionRecorder, KeyLayout, align_keys, flow_inputs, noisy_actions, velocity,
)


def _batch(teacher_policy, dataset_dir, n=3):
    from vla_ros.train.data import open_dataset

    policy = teacher_policy.policy
    ds = open_dataset(dataset_dir, policy.config)
    items = [ds[i] for i in range(n)]
    batch = torch.utils.data.default_collate(items)
    return teacher_policy.preprocessor(batch)


def test_velocity_squared_error_is_lerobots_loss(teacher_policy, dataset_dir):
    policy = teacher_policy.policy
    batch = _batch(teacher_policy, dataset_dir)
    inputs = flow_inputs(policy, batch)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(inputs.actions.shape, generator=g)
    time = torch.rand(inputs.actions.shape[0], generator=g) * 0.9 + 0.05
    with torch.no_grad():
        lerobot_loss, _ = policy.forward(dict(batch), noise=noise, time=time)
        x_t, u_t = noisy_actions(inputs.actions, noise, time)
        ours = torch.nn.functional.mse_loss(velocity(policy.model, inputs, x_t, time), u_t)
    assert torch.allclose(ours, lerobot_loss, rtol=1e-5, atol=1e-6)


def test_attention_recorder_records_action_rows_without_changing_outputs(teacher_policy, dataset_dir):
    policy = teacher_policy.policy
    batch = _batch(teacher_policy, dataset_dir, n=2)
    inputs = flow_inputs(policy, batch)
    noise = torch.randn(inputs.actions.shape)
    time = torch.full((2,), 0.5)
    x_t, _ = noisy_actions(inputs.actions, noise, time)
    vwe = policy.model.vlm_with_expert
    with torch.no_grad():
        plain = velocity(policy.model, inputs, x_t, time)
        with AttentionRecorder(vwe, [1, 2], policy.config.chunk_size) as rec:
            recorded = velocity(policy.model, inputs, x_t, time)
    assert torch.equal(plain, recorded)
    assert "forward_attn_layer" not in vwe.__dict__  # restored
    chunk, heads = policy.config.chunk_size, vwe.num_attention_heads
    self_attn, cross = rec.probs[2], rec.probs[1]  # layer 2: joint self-attention; layer 1: cross
    assert self_attn.shape[:3] == cross.shape[:3] == (2, heads, chunk)
    assert self_attn.shape[-1] == cross.shape[-1] + chunk  # self-attention also sees the action tokens
    for p in (self_attn, cross):
        assert torch.allclose(p.sum(-1), torch.ones(p.shape[:-1]), atol=1e-5)


def test_align_keys_pools_image_attention_keeping_its_mass():
    big = KeyLayout(((4, 4), (4, 4)), 0, 0)
    small = KeyLayout(((2, 2), (2, 2)), 0, 0)
    probs = torch.softmax(torch.randn(2, 3, 5, 16 + 16 + 7), dim=-1)
    out = align_keys(probs, big, small)
    assert out.shape == (2, 3, 5, 4 + 4 + 7)
    assert torch.allclose(out.sum(-1), torch.ones(2, 3, 5), atol=1e-5)
    assert torch.allclose(out[..., :4].sum(-1), probs[..., :16].sum(-1), atol=1e-5)
    assert torch.allclose(out[..., 8:], probs[..., 32:], atol=1e-6)
    assert align_keys(probs, big, big) is probs
