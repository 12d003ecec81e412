"""Training objectives on LeRobot's SmolVLA: flow matching, L1, and Shallow-pi distillation.

Every objective is a ``torch.nn.Module`` whose ``forward(batch)`` returns ``(loss, terms)`` like
``SmolVLAPolicy.forward``, so LeRobot's ``update_policy`` (backward, gradient clipping, optimizer
and scheduler step) runs it unchanged. Only the trained policy is a sub-module: a teacher is held
outside the module tree, so its weights are neither optimised nor clipped, and stay in eval mode.

- :class:`FlowMatching`: LeRobot's own ``SmolVLAPolicy.forward`` (squared error between the
  predicted velocity and ``noise - actions``). Strategies ``flow`` and ``frozen-vision``.
- :class:`L1Flow`: the same forward pass with the absolute error instead (strategy ``l1``).
- :class:`Distillation`: ground-truth flow matching + the teacher's velocity at the same noise and
  time + attention transfer on the action tokens at middle layers, each with its weight.

:func:`velocity` is the forward pass of ``VLAFlowMatching.forward`` up to the predicted velocity,
built from the model's own methods (``embed_prefix``, ``embed_suffix``, ``vlm_with_expert``,
``action_out_proj``); a test checks its squared error equals LeRobot's loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class FlowInputs:
    """A batch as SmolVLA's flow-matching model takes it (images resized, state/actions padded)."""

    images: list[Tensor]
    img_masks: list[Tensor]
    lang_tokens: Tensor
    lang_masks: Tensor
    state: Tensor
    actions: Tensor | None


def flow_inputs(policy: Any, batch: dict[str, Tensor]) -> FlowInputs:
    """Prepare a preprocessed batch for ``policy.model`` with the policy's own methods."""
    from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

    if policy.config.adapt_to_pi_aloha:
        raise ValueError("adapt_to_pi_aloha checkpoints are not supported by the vla_ros train layer")
    images, img_masks = policy.prepare_images(batch)
    return FlowInputs(
        images=images,
        img_masks=img_masks,
        lang_tokens=batch[OBS_LANGUAGE_TOKENS],
        lang_masks=batch[OBS_LANGUAGE_ATTENTION_MASK],
        state=policy.prepare_state(batch),
        actions=policy.prepare_action(batch) if ACTION in batch else None,
    )


def velocity(model: Any, inputs: FlowInputs, x_t: Tensor, time: Tensor) -> Tensor:
    """The velocity ``v_t`` a ``VLAFlowMatching`` model predicts at noisy actions ``x_t`` and ``time``.

    Same computation as ``VLAFlowMatching.forward`` (training mode: prefix and action tokens in
    one pass, no KV cache), returning ``(B, chunk_size, max_action_dim)`` float32.
    """
    from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

    prefix_embs, prefix_pad_masks, prefix_att_masks = model.embed_prefix(
        inputs.images, inputs.img_masks, inputs.lang_tokens, inputs.lang_masks, state=inputs.state
    )
    suffix_embs, suffix_pad_masks, suffix_att_masks = model.embed_suffix(x_t, time)
    pad_masks = torch.cat([prefix_pad_masks, suffix_pad_masks], dim=1)
    att_masks = torch.cat([prefix_att_masks, suffix_att_masks], dim=1)
    att_2d_masks = make_att_2d_masks(pad_masks, att_masks)
    position_ids = torch.cumsum(pad_masks, dim=1) - 1
    (_, suffix_out), _ = model.vlm_with_expert.forward(
        attention_mask=att_2d_masks,
        position_ids=position_ids,
        past_key_values=None,
        inputs_embeds=[prefix_embs, suffix_embs],
        use_cache=False,
        fill_kv_cache=False,
    )
    suffix_out = suffix_out[:, -model.config.chunk_size:].to(dtype=torch.float32)
    return model.action_out_proj(suffix_out)


def noisy_actions(actions: Tensor, noise: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """Flow-matching interpolation: ``x_t = t * noise + (1 - t) * actions`` and the target ``noise - actions``."""
    t = time[:, None, None]
    return t * noise + (1 - t) * actions, noise - actions


# --------------------------------------------------------------------------- attention capture


class AttentionRecorder:
    """Records, at chosen layers, the attention of the action tokens in a ``SmolVLMWithExpertModel``.

    While active (``with recorder:``), the model runs exactly as before (LeRobot's own attention
    code computes every output); at the chosen layers the attention probabilities of the last
    ``chunk_size`` queries of the layer's last attention call (the action tokens: joint
    self-attention layers attend over prefix + actions, cross-attention layers over the prefix)
    are computed again from the same queries, keys and mask, and kept in :attr:`probs`
    (``{layer: (B, heads, chunk_size, keys)}``), in the autograd graph.
    """

    def __init__(self, vlm_with_expert: Any, layers: Sequence[int], chunk_size: int) -> None:
        self.model = vlm_with_expert
        self.layers = set(int(i) for i in layers)
        self.chunk_size = int(chunk_size)
        self.probs: dict[int, Tensor] = {}
        self._layer: int | None = None
        self._calls: dict[int, tuple] = {}

    def _wrap_layer(self, method):
        def run(model_layers, inputs_embeds, layer_idx, *args, **kwargs):
            self._layer = layer_idx
            try:
                return method(model_layers, inputs_embeds, layer_idx, *args, **kwargs)
            finally:
                self._layer = None
        return run

    def _wrap_attention(self, attention):
        def run(attention_mask, batch_size, head_dim, query_states, key_states, value_states):
            if self._layer in self.layers:
                self._calls[self._layer] = (attention_mask, head_dim, query_states, key_states)
            return attention(attention_mask, batch_size, head_dim, query_states, key_states, value_states)
        return run

    def __enter__(self) -> "AttentionRecorder":
        model = self.model
        self.probs, self._calls = {}, {}
        attention = model.get_attention_interface()
        model.forward_attn_layer = self._wrap_layer(type(model).forward_attn_layer.__get__(model))
        model.forward_cross_attn_layer = self._wrap_layer(type(model).forward_cross_attn_layer.__get__(model))
        model.get_attention_interface = lambda: self._wrap_attention(attention)
        return self

    def __exit__(self, *exc) -> None:
        for name in ("forward_attn_layer", "forward_cross_attn_layer", "get_attention_interface"):
            self.model.__dict__.pop(name, None)
        for layer, (mask, head_dim, q, k) in self._calls.items():
            self.probs[layer] = self._attention_probs(mask, head_dim, q, k)
        self._calls = {}

    def _attention_probs(self, mask: Tensor, head_dim: int, q: Tensor, k: Tensor) -> Tensor:
        n = self.chunk_size
        q = q[:, -n:].to(torch.float32).transpose(1, 2)  # B, H, n, D
        groups = q.shape[1] // k.shape[2]
        k = k.to(torch.float32).repeat_interleave(groups, dim=2).transpose(1, 2)  # B, H, S, D
        scores = torch.matmul(q, k.transpose(2, 3)) * head_dim**-0.5
        scores = torch.where(mask[:, None, -n:, :], scores, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=-1)


@dataclass(frozen=True)
class KeyLayout:
    """How the keys of an action-token attention map are laid out (per camera, then the rest)."""

    image_grids: tuple[tuple[int, int], ...]  # (rows, cols) of image tokens per camera
    before_image: int  # special tokens before each camera's image tokens
    after_image: int  # ... and after

    @classmethod
    def of(cls, policy: Any, num_cameras: int) -> "KeyLayout":
        config = policy.config
        vlm_config = policy.model.vlm_with_expert.config
        patch = int(vlm_config.vision_config.patch_size)
        scale = int(getattr(vlm_config, "scale_factor", 1))
        h, w = config.resize_imgs_with_padding or (vlm_config.vision_config.image_size,) * 2
        grid = (h // patch // scale, w // patch // scale)
        special = bool(config.add_image_special_tokens)
        return cls((grid,) * num_cameras, 2 if special else 0, 1 if special else 0)


def align_keys(probs: Tensor, source: KeyLayout, target: KeyLayout) -> Tensor:
    """Map attention over ``source``'s keys onto ``target``'s (cameras' image grids area-pooled).

    Only the image segments differ between the two (same language, state and action tokens), so
    each camera's image-token attention is pooled to the target grid keeping its total mass.
    """
    if source == target:
        return probs
    if len(source.image_grids) != len(target.image_grids) or (source.before_image, source.after_image) != (
        target.before_image, target.after_image
    ):
        raise ValueError("attention maps from different camera layouts cannot be compared")
    parts, pos = [], 0
    lead = probs.shape[:-1]
    for (sr, sc), (tr, tc) in zip(source.image_grids, target.image_grids):
        parts.append(probs[..., pos:pos + source.before_image])
        pos += source.before_image
        img = probs[..., pos:pos + sr * sc].reshape(-1, 1, sr, sc)
        pooled = F.adaptive_avg_pool2d(img, (tr, tc)) * (sr * sc) / (tr * tc)
        parts.append(pooled.reshape(*lead, tr * tc))
        pos += sr * sc
        parts.append(probs[..., pos:pos + source.after_image])
        pos += source.after_image
    parts.append(probs[..., pos:])
    out = torch.cat(parts, dim=-1)
    return out / out.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def attention_kl(teacher: Tensor, student: Tensor) -> Tensor:
    """Mean KL(teacher || student) over batch, heads and queries (masked keys contribute 0)."""
    kl = torch.xlogy(teacher, teacher) - teacher * torch.log(student.clamp_min(1e-12))
    return kl.sum(dim=-1).mean()


# --------------------------------------------------------------------------- objectives


class Objective(nn.Module):
    """A training loss on one policy: ``forward(batch) -> (loss, {term: value})``."""

    name = "objective"
    terms: tuple[str, ...] = ("loss",)

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy


class FlowMatching(Objective):
    """LeRobot's SmolVLA loss: squared error of the predicted flow-matching velocity."""

    name = "flow"
    terms = ("loss",)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, _ = self.policy.forward(batch)
        return loss, {"loss": float(loss.detach())}


class L1Flow(Objective):
    """The flow-matching forward pass with an absolute (L1) error in place of the squared error."""

    name = "l1"
    terms = ("loss",)

    def forward(self, batch: dict[str, Tensor], noise: Tensor | None = None,
                time: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        model = self.policy.model
        inputs = flow_inputs(self.policy, batch)
        if noise is None:
            noise = model.sample_noise(inputs.actions.shape, inputs.actions.device)
        if time is None:
            time = model.sample_time(inputs.actions.shape[0], inputs.actions.device)
        x_t, u_t = noisy_actions(inputs.actions, noise, time)
        loss = F.l1_loss(velocity(model, inputs, x_t, time), u_t)
        return loss, {"loss": float(loss.detach())}


@dataclass(frozen=True)
class DistillWeights:
    """Weights of the distillation terms (0 turns a term off)."""

    gt: float = 1.0
    velocity: float = 1.0
    attention: float = 0.1


class Distillation(Objective):
    """Shallow-pi distillation of a SmolVLA teacher into a shallower student.

    loss = ``gt`` * |v_s - (noise - actions)|^2 + ``velocity`` * |v_s - v_t|^2
    + ``attention`` * KL(teacher attention || student attention), with v_s, v_t the student's and
    teacher's velocities at the same noise and time, and the attention of the action tokens at the
    paired middle layers (``layer_pairs``: student layer -> teacher layer).

    Args:
        student: The policy being trained.
        teacher: The frozen teacher (kept in eval mode, outside this module's parameters).
        weights: The terms' weights.
        layer_pairs: ``{student layer: teacher layer}`` for attention transfer.
    """

    name = "distill"
    terms = ("loss", "gt", "velocity", "attention")

    def __init__(self, student: nn.Module, teacher: nn.Module, weights: DistillWeights,
                 layer_pairs: dict[int, int]) -> None:
        super().__init__(student)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.__dict__["teacher"] = teacher  # not a sub-module: not optimised, not switched to train()
        self.weights = weights
        self.layer_pairs = dict(layer_pairs) if weights.attention > 0 else {}
        self.action_dim = int(student.config.action_feature.shape[0])

    def _run(self, policy, inputs, x_t, time, layers) -> tuple[Tensor, dict[int, Tensor]]:
        if not layers:
            return velocity(policy.model, inputs, x_t, time), {}
        with AttentionRecorder(policy.model.vlm_with_expert, layers, policy.config.chunk_size) as rec:
            v = velocity(policy.model, inputs, x_t, time)
        return v, rec.probs

    def forward(self, batch: dict[str, Tensor], noise: Tensor | None = None,
                time: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The loss and its terms; ``noise`` and ``time`` default to fresh samples (as LeRobot's)."""
        student, teacher, w = self.policy, self.teacher, self.weights
        model = student.model
        inputs_s = flow_inputs(student, batch)
        actions = inputs_s.actions
        if noise is None:
            noise = model.sample_noise(actions.shape, actions.device)
        if time is None:
            time = model.sample_time(actions.shape[0], actions.device)
        x_t, u_t = noisy_actions(actions, noise, time)

        v_s, att_s = self._run(student, inputs_s, x_t, time, list(self.layer_pairs))
        terms: dict[str, Tensor] = {"gt": F.mse_loss(v_s, u_t)}
        if w.velocity > 0 or self.layer_pairs:
            teacher.eval()
            with torch.no_grad():
                inputs_t = flow_inputs(teacher, batch)
                v_t, att_t = self._run(teacher, inputs_t, x_t, time, sorted(set(self.layer_pairs.values())))
            d = self.action_dim
            terms["velocity"] = F.mse_loss(v_s[..., :d], v_t[..., :d])
            if self.layer_pairs:
                cams = len(inputs_s.images)
                src, dst = KeyLayout.of(teacher, cams), KeyLayout.of(student, cams)
                kls = [attention_kl(align_keys(att_t[t], src, dst), att_s[s]) for s, t in self.layer_pairs.items()]
                terms["attention"] = torch.stack(kls).mean()
        loss = w.gt * terms["gt"]
        if "velocity" in terms:
            loss = loss + w.velocity * terms["velocity"]
        if "attention" in terms:
            loss = loss + w.attention * terms["attention"]
        out = {"loss": float(loss.detach())}
        out.update({k: float(v.detach()) for k, v in terms.items()})
        return loss, out

