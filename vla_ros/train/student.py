"""A shallower SmolVLA student made from a teacher's layers (Shallow-pi initialisation).

The student keeps ``K`` of the teacher's VLM layers and ``M`` of its action-expert layers, chosen
evenly (``round(linspace(0, L - 1, K))``), and optionally a reduced vision tower (``V`` of its
SigLIP layers, chosen the same way, and/or a lower input resolution). Every other weight
(embeddings, connector, projections, norms) is copied as is.

Layouts LeRobot 0.4.4 can run: with cross attention, SmolVLA interleaves joint self-attention
layers (every ``self_attn_every_n_layers``-th layer) with cross-attention layers, and the shape of
an expert layer's key/value projections depends on its kind. So:

- ``M == K`` (the default): the student keeps the teacher's interleaving; a slot whose evenly chosen
  layer is of the other kind takes the nearest teacher layer of its own kind (for 16 -> 4, 6, 8 or
  2 layers the chosen layers are exactly ``round(linspace)``, or within one of it). VLM and expert
  layers stay paired (student slot ``j`` holds the teacher's VLM and expert layer of the same index).
- ``M < K`` (``K`` a multiple of ``M``): LeRobot places one expert layer every ``K / M`` VLM layers,
  which only runs when the layers without an expert are cross-attention layers; the student then
  uses joint self-attention in its first layer only (``self_attn_every_n_layers = K``).
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)

BACKBONE_FILES = ("*.json", "*.txt", "*.jinja", "*.model")
"""A backbone folder's files the student needs (config, tokenizer, processor; never weights)."""

VLM_LAYERS = "model.vlm_with_expert.vlm.model.text_model.layers."
EXPERT_LAYERS = "model.vlm_with_expert.lm_expert.layers."
VISION_LAYERS = "model.vlm_with_expert.vlm.model.vision_model.encoder.layers."


def even_layers(total: int, keep: int) -> list[int]:
    """``round(linspace(0, total - 1, keep))``: ``keep`` layers of ``total`` chosen evenly."""
    import numpy as np

    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    return [int(i) for i in np.round(np.linspace(0, total - 1, keep))]


def pick_layers(total: int, keep: int, want: Sequence[bool] | None = None,
                have: Sequence[bool] | None = None) -> list[int]:
    """Evenly chosen layers, each of the kind its slot needs.

    Args:
        total: Layers in the teacher.
        keep: Layers in the student.
        want: Per student slot, the kind it needs (True: self-attention); ``None``: any.
        have: Per teacher layer, its kind.

    Returns:
        Strictly increasing teacher indices, each the nearest to ``linspace(0, total-1, keep)[j]``
        among the layers of the right kind after the previous pick.
    """
    import numpy as np

    if want is None or have is None:
        return even_layers(total, keep)
    targets = np.linspace(0, total - 1, keep)
    picks: list[int] = []
    for j, target in enumerate(targets):
        remaining = keep - j - 1
        lo = picks[-1] + 1 if picks else 0
        candidates = [i for i in range(lo, total - remaining) if have[i] == want[j]]
        if not candidates:
            raise ValueError(f"the teacher has no {'self' if want[j] else 'cross'}-attention expert layer left "
                             f"for student layer {j}; choose another number of layers")
        picks.append(min(candidates, key=lambda i: (abs(i - target), i)))
    return picks


def expert_kinds(num_layers: int, attention_mode: str, every_n: int) -> list[bool]:
    """Per expert layer: True for joint self-attention, False for cross-attention (LeRobot's rule)."""
    cross = "cross" in attention_mode
    return [not cross or (every_n > 0 and i % every_n == 0) for i in range(num_layers)]


@dataclass
class StudentPlan:
    """Which teacher layers the student keeps, and its layout."""

    vlm_layers: list[int]
    expert_layers: list[int]
    vision_layers: list[int]
    image_size: tuple[int, int]
    self_attn_every_n_layers: int
    num_expert_layers: int  # as SmolVLAConfig takes it (-1: as many as VLM layers)
    teacher: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def attention_pairs(self, num_pairs: int = 2) -> dict[int, int]:
        """``{student layer: teacher layer}`` at the middle of the student, where an expert runs.

        Student layer ``i`` (VLM index) holds expert layer ``i // (K // M)``; the pair is the
        teacher's layer holding the teacher expert layer it was copied from.
        """
        k, m = len(self.vlm_layers), len(self.expert_layers)
        step = k // m
        teacher_step = self.teacher["vlm_layers"] // self.teacher["expert_layers"]
        slots = [e * step for e in range(m)]  # VLM layers that run an expert layer
        middle = (k - 1) / 2
        chosen = sorted(sorted(slots, key=lambda i: (abs(i - middle), i))[:num_pairs])
        return {i: self.expert_layers[i // step] * teacher_step for i in chosen}


def plan_student(teacher: Any, vlm_layers: int, expert_layers: int | None = None,
                 vision_layers: int | None = None, image_size: int | None = None) -> StudentPlan:
    """Check the requested student against the teacher and choose its layers.

    Args:
        teacher: The teacher ``SmolVLAPolicy``.
        vlm_layers: K, VLM layers of the student.
        expert_layers: M, action-expert layers; ``None``: K.
        vision_layers: V, vision-encoder layers; ``None``: the teacher's.
        image_size: Side of the square input image; ``None``: the teacher's.

    Raises:
        ValueError: a layout LeRobot's SmolVLA cannot build or run, with the valid choices.
    """
    config = teacher.config
    tw = teacher.model.vlm_with_expert
    kt, mt, nt = tw.num_vlm_layers, tw.num_expert_layers, tw.self_attn_every_n_layers
    vision = tw.get_vlm_model().vision_model
    vt = len(vision.encoder.layers)
    vc = tw.config.vision_config
    step = int(vc.patch_size) * int(getattr(tw.config, "scale_factor", 1))
    teacher_size = tuple(config.resize_imgs_with_padding or (vc.image_size, vc.image_size))

    k = int(vlm_layers)
    if not 1 <= k <= kt:
        raise ValueError(f"--vlm-layers {k}: the teacher has {kt} VLM layers; choose 1..{kt}")
    m = k if expert_layers is None else int(expert_layers)
    divisors = [d for d in range(1, k + 1) if k % d == 0 and d <= mt]
    if not 1 <= m <= min(k, mt) or k % m:
        raise ValueError(
            f"--expert-layers {m}: LeRobot's SmolVLA runs one expert layer every K/M VLM layers, so M must "
            f"divide --vlm-layers {k} and be at most the teacher's {mt} expert layers; valid: {divisors}"
        )
    cross = "cross" in config.attention_mode
    if m < k and not cross:
        raise ValueError(f"--expert-layers {m} < --vlm-layers {k} needs attention_mode 'cross_attn'; the teacher "
                         f"uses '{config.attention_mode}': use --expert-layers {k}")
    v = vt if vision_layers is None else int(vision_layers)
    if not 1 <= v <= vt:
        raise ValueError(f"--vision-layers {v}: the teacher's vision encoder has {vt} layers; choose 1..{vt}")
    if image_size is None:
        size = (int(teacher_size[0]), int(teacher_size[1]))
    else:
        r = int(image_size)
        if r < step or r % step or r > max(teacher_size):
            valid = [s for s in range(step, max(teacher_size) + 1, step)]
            raise ValueError(f"--image-size {r}: must be a multiple of {step} (patch size x pixel-shuffle "
                             f"factor) up to the teacher's {max(teacher_size)}; valid: {valid}")
        size = (r, r)

    notes = []
    n_student = nt if m == k else k
    if m < k:
        notes.append(f"M={m} < K={k}: joint self-attention in the first layer only "
                     f"(self_attn_every_n_layers={k}), cross-attention elsewhere")
    have = expert_kinds(mt, config.attention_mode, nt)
    want = expert_kinds(m, config.attention_mode, n_student)
    experts = pick_layers(mt, m, want, have)
    aligned = m == k and mt == kt
    vlm = experts if aligned else even_layers(kt, k)
    if experts != even_layers(mt, m):
        notes.append(f"expert layers {experts} instead of {even_layers(mt, m)}: each slot keeps a teacher "
                     "layer of its own attention kind (self/cross)")
    return StudentPlan(
        vlm_layers=vlm,
        expert_layers=experts,
        vision_layers=even_layers(vt, v),
        image_size=size,
        self_attn_every_n_layers=n_student,
        num_expert_layers=-1 if m == k else m,
        teacher={"vlm_layers": kt, "expert_layers": mt, "vision_layers": vt,
                 "image_size": list(teacher_size), "self_attn_every_n_layers": nt},
        notes=notes,
    )


def copy_backbone(source: Path, target: Path, *, text_layers: int | None = None,
                  vision_layers: int | None = None) -> Path:
    """Copy a backbone folder's config/tokenizer/processor files, with fewer layers in its config."""
    target.mkdir(parents=True, exist_ok=True)
    for pattern in BACKBONE_FILES:
        for f in source.glob(pattern):
            if f.is_file():
                shutil.copy2(f, target / f.name)
    cfg_file = target / "config.json"
    data = json.loads(cfg_file.read_text(encoding="utf-8"))
    if text_layers is not None:
        data.setdefault("text_config", {})["num_hidden_layers"] = int(text_layers)
    if vision_layers is not None:
        data.setdefault("vision_config", {})["num_hidden_layers"] = int(vision_layers)
    cfg_file.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return target


def _layer_map(plan: StudentPlan) -> list[tuple[str, list[int]]]:
    return [(VLM_LAYERS, plan.vlm_layers), (EXPERT_LAYERS, plan.expert_layers), (VISION_LAYERS, plan.vision_layers)]


def teacher_key(student_key: str, plan: StudentPlan) -> str:
    """The teacher weight a student weight is copied from."""
    for prefix, picks in _layer_map(plan):
        if student_key.startswith(prefix):
            index, rest = student_key[len(prefix):].split(".", 1)
            return f"{prefix}{picks[int(index)]}.{rest}"
    return student_key


def build_student(teacher: Any, plan: StudentPlan, backbone_source: Path, backbone_dir: Path, *,
                  train_expert_only: bool = False, freeze_vision_encoder: bool = False, seed: int = 0):
    """Make the student ``SmolVLAPolicy`` for ``plan``, initialised from ``teacher``'s weights.

    Args:
        teacher: The teacher ``SmolVLAPolicy``.
        plan: From :func:`plan_student`.
        backbone_source: The teacher's local backbone folder (config + tokenizer).
        backbone_dir: Where the student's backbone folder is written (its ``vlm_model_name``).
        train_expert_only, freeze_vision_encoder: The student's LeRobot fine-tuning flags.
        seed: Seed of the (fully overwritten) random initialisation.
    """
    import torch
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    copy_backbone(backbone_source, backbone_dir, text_layers=len(plan.vlm_layers),
                  vision_layers=len(plan.vision_layers))
    config = copy.deepcopy(teacher.config)
    config.vlm_model_name = str(backbone_dir)
    config.load_vlm_weights = False
    config.num_vlm_layers = len(plan.vlm_layers)
    config.num_expert_layers = plan.num_expert_layers
    config.self_attn_every_n_layers = plan.self_attn_every_n_layers
    config.resize_imgs_with_padding = tuple(plan.image_size)
    config.train_expert_only = train_expert_only
    config.freeze_vision_encoder = freeze_vision_encoder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = SmolVLAPolicy(config)
    source = teacher.state_dict()
    state = {}
    for key, value in student.state_dict().items():
        tkey = teacher_key(key, plan)
        if tkey not in source:
            raise RuntimeError(f"student weight {key}: no teacher weight {tkey}")
        if tuple(source[tkey].shape) != tuple(value.shape):
            raise RuntimeError(f"student weight {key} {tuple(value.shape)} != teacher {tkey} {tuple(source[tkey].shape)}")
        state[key] = source[tkey].to(dtype=value.dtype)
    student.load_state_dict(state, strict=True)
    student.to(next(teacher.parameters()).device)
    return student
