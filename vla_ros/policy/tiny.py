"""The embedded offline policy: a tiny SmolVLA-architecture checkpoint built locally.

Nothing is downloaded. The builder writes, into ``<cache>/models/tiny-<hash>/``:

- ``backbone/``: a SmolVLM backbone *description* made with transformers' own classes: a
  ``config.json`` (``SmolVLMConfig`` with tiny vision and text configs), a byte-level BPE tokenizer
  trained with the ``tokenizers`` library on a built-in corpus of robot instructions, and the
  processor files, so ``AutoConfig`` / ``AutoProcessor`` / ``AutoTokenizer`` load it.
- the LeRobot checkpoint itself, saved by LeRobot: ``config.json`` (a ``SmolVLAConfig`` whose
  ``vlm_model_name`` is that backbone folder, ``load_vlm_weights=False``), ``model.safetensors``
  (``SmolVLAPolicy.save_pretrained``) and the pre/post-processor pipelines from
  ``make_pre_post_processors`` (``policy_preprocessor.json``, ``policy_postprocessor.json`` and
  their normalizer state files).

The directory name is a hash of everything that determines the result (robot dims and stats,
:class:`TinyPolicyConfig`, LeRobot and transformers versions); weights come from a fixed seed, so
the same inputs give the same files. The build happens in a temporary sibling directory that is
renamed into place, so two processes racing to build it both end up with one complete copy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from vla_ros.paths import cache_dir
from vla_ros.policy.robot_dims import RobotDims

logger = logging.getLogger(__name__)

TINY_FORMAT_VERSION = 1
"""Bump when the build recipe changes, so old cached builds are not reused."""

BACKBONE_DIRNAME = "backbone"
SPEC_FILENAME = "vla_ros_tiny.json"

# Weight init seeds torch's global RNG: builds in one process take turns (processes race safely).
_BUILD_LOCK = threading.Lock()

SPECIAL_TOKENS = {
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "bos_token": "<|im_start|>",
    "eos_token": "<end_of_utterance>",
}
# Token attributes SmolVLM's processor and LeRobot's SmolVLA read from the tokenizer.
EXTRA_SPECIAL_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}

INSTRUCTION_CORPUS = (
    "pick up the red cube",
    "pick up the blue cube and place it in the box",
    "place the green block on the plate",
    "put the red cube in the bin",
    "stack the yellow cube on the blue cube",
    "grasp the cup by the handle",
    "move the bottle to the left",
    "push the block to the right",
    "open the gripper",
    "close the gripper",
    "lift the sponge and wipe the table",
    "fold the towel in half",
    "insert the peg into the hole",
    "pour the water into the bowl",
    "hand over the screwdriver",
    "sort the cubes by color",
    "press the red button",
    "open the drawer and take out the spoon",
    "close the drawer",
    "turn the knob clockwise",
    "slide the box forward",
    "pick the orange from the basket",
    "put the pen in the cup",
    "move the arm to the home position",
    "stop and hold the current position",
    "rotate the wrist to the left",
    "lower the object gently onto the table",
    "transfer the cube from the left hand to the right hand",
    "pick up the small white ball",
    "place the black block next to the red one",
    "clean up the table",
    "put all the toys in the box",
    "take the lid off the jar",
    "hang the cloth on the hook",
    "move forward slowly",
    "grab the tape and put it in the tray",
)


@dataclass(frozen=True)
class TinyPolicyConfig:
    """Architecture and seed of the tiny policy (the ``build:`` block of ``config/models/tiny.yaml``).

    Args:
        seed: Seed of the weight initialisation (tokenizer training is deterministic).
        image_size: Side of the square image the policy sees (LeRobot resizes with padding).
        patch_size: Vision patch size; ``(image_size / patch_size)**2`` patches, then a 2x2
            pixel shuffle in the connector.
        vision_hidden_size, vision_layers, vision_heads: The SigLIP-style vision encoder.
        text_hidden_size, text_layers, text_heads, text_kv_heads: The language model; the
            action expert has as many layers (``num_expert_layers=-1``: LeRobot 0.4.4 crashes at
            inference with fewer expert than VLM layers when ``self_attn_every_n_layers=2``).
        expert_width_multiplier: Expert hidden size relative to the text model.
        vocab_size: Target size of the BPE vocabulary.
        tokenizer_max_length: Maximum instruction length in tokens.
        chunk_size: Actions per chunk (also ``n_action_steps``).
        num_steps: Flow-matching denoising steps.
        vision_intermediate_size: MLP width of the vision encoder; ``None``: 2 x its hidden size.
        text_intermediate_size: MLP width of the language model; ``None``: 2 x its hidden size.
        scale_factor: Pixel-shuffle factor of the connector: ``(image_size / patch_size /
            scale_factor)**2`` image tokens per camera.
        backbone_text_layers: Layers of the language model in the backbone description; SmolVLA
            keeps the first ``text_layers`` (its ``num_vlm_layers``). ``None``: ``text_layers``.
        text_vocab_size: Rows of the token embedding (and LM head); ``None``: the size of the
            trained tokenizer. Larger values only add (unused) rows, as a real backbone has.

    :meth:`smolvla_base` gives SmolVLA's real sizes (SmolVLM2-500M backbone).
    """

    seed: int = 0
    image_size: int = 64
    patch_size: int = 8
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    expert_width_multiplier: float = 0.75
    vocab_size: int = 512
    tokenizer_max_length: int = 48
    chunk_size: int = 50
    num_steps: int = 10
    # Fields added after the first format; at their defaults they are left out of the build hash
    # (see _EXTENSION_DEFAULTS), so existing tiny builds keep their directory.
    vision_intermediate_size: int | None = None
    text_intermediate_size: int | None = None
    scale_factor: int = 2
    backbone_text_layers: int | None = None
    text_vocab_size: int | None = None

    def __post_init__(self) -> None:
        step = self.patch_size * self.scale_factor
        if self.scale_factor < 1 or self.image_size % step:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of scale_factor * patch_size "
                f"({self.scale_factor} * {self.patch_size})"
            )
        if self.text_hidden_size % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError("text_hidden_size must divide by text_heads, text_heads by text_kv_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must divide by vision_heads")
        if self.backbone_text_layers is not None and self.backbone_text_layers < self.text_layers:
            raise ValueError(
                f"backbone_text_layers ({self.backbone_text_layers}) must be >= text_layers ({self.text_layers})"
            )
        if self.text_layers < 1 or self.vision_layers < 1:
            raise ValueError("text_layers and vision_layers must be >= 1")

    @property
    def image_seq_len(self) -> int:
        """Image tokens per camera after the connector's pixel shuffle."""
        return (self.image_size // self.patch_size // self.scale_factor) ** 2

    @classmethod
    def smolvla_base(cls, **overrides: Any) -> "TinyPolicyConfig":
        """SmolVLA's real architecture (``lerobot/smolvla_base``), to be built with random weights.

        Backbone: SmolVLM2-500M-Video-Instruct. Vision: SigLIP, hidden 768, MLP 3072, 12 layers,
        12 heads, 512x512 images in 16x16 patches; connector pixel shuffle x4 -> 64 image tokens
        per camera. Text: SmolLM2-360M-like, hidden 960, MLP 2560, 15 heads, 5 KV heads, 32
        layers of which SmolVLA keeps 16 (``num_vlm_layers``), 49280 embedding rows. Action
        expert: 0.75 x the text width, as many layers as the VLM (16), 10 flow-matching steps,
        50-action chunks, instructions up to 48 tokens (SmolVLAConfig's defaults).

        Args:
            overrides: Fields to change, e.g. ``text_layers=2`` for a fast structural check.
        """
        values = dict(
            image_size=512,
            patch_size=16,
            vision_hidden_size=768,
            vision_intermediate_size=3072,
            vision_layers=12,
            vision_heads=12,
            text_hidden_size=960,
            text_intermediate_size=2560,
            text_layers=16,
            backbone_text_layers=32,
            text_heads=15,
            text_kv_heads=5,
            text_vocab_size=49280,
            scale_factor=4,
            expert_width_multiplier=0.75,
            tokenizer_max_length=48,
            chunk_size=50,
            num_steps=10,
        )
        values.update(overrides)
        if values.get("backbone_text_layers") is not None and values["backbone_text_layers"] < values["text_layers"]:
            values["backbone_text_layers"] = values["text_layers"]
        return cls(**values)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> "TinyPolicyConfig":
        """Build from a mapping (the variant's ``build:`` block); unknown keys raise ValueError."""
        options = dict(options or {})
        preset = options.pop("preset", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"tiny build options: unknown {unknown}; valid: preset, {sorted(known)}")
        if preset is None:
            return cls(**options)
        if preset not in PRESETS:
            raise ValueError(f"tiny build options: unknown preset '{preset}'; valid: {', '.join(PRESETS)}")
        return getattr(cls, PRESETS[preset])(**options)


PRESETS = {"smolvla_base": "smolvla_base"}
"""``preset:`` names accepted in a ``build:`` block -> the TinyPolicyConfig class method."""

_EXTENSION_DEFAULTS = {
    "vision_intermediate_size": None,
    "text_intermediate_size": None,
    "scale_factor": 2,
    "backbone_text_layers": None,
    "text_vocab_size": None,
}


def _config_spec(config: TinyPolicyConfig) -> dict[str, Any]:
    values = asdict(config)
    return {k: v for k, v in values.items() if k not in _EXTENSION_DEFAULTS or v != _EXTENSION_DEFAULTS[k]}


def _versions() -> dict[str, str]:
    import lerobot
    import transformers

    return {"lerobot": lerobot.__version__, "transformers": transformers.__version__}


def tiny_spec(dims: RobotDims, config: TinyPolicyConfig) -> dict[str, Any]:
    """Everything the built files depend on (hashed into the directory name, saved beside them)."""
    return {
        "format": TINY_FORMAT_VERSION,
        "robot": asdict(dims),
        "stats": dims.stats(),
        "config": _config_spec(config),
        "versions": _versions(),
    }


def tiny_checkpoint_dir(
    dims: RobotDims,
    config: TinyPolicyConfig | None = None,
    root: str | Path | None = None,
    prefix: str = "tiny",
) -> Path:
    """Where the checkpoint for ``dims`` lives: ``<root>/<prefix>-<hash>`` (root: cache/models)."""
    config = config or TinyPolicyConfig()
    blob = json.dumps(tiny_spec(dims, config), sort_keys=True).encode()
    digest = hashlib.sha256(blob).hexdigest()[:12]
    base = (Path(root) if root is not None else cache_dir() / "models").expanduser().absolute()
    return base / f"{prefix}-{digest}"


def is_complete(checkpoint_dir: Path) -> bool:
    return all(
        (checkpoint_dir / name).is_file()
        for name in ("config.json", "model.safetensors", "policy_preprocessor.json", SPEC_FILENAME)
    )


def ensure_tiny_checkpoint(
    dims: RobotDims,
    config: TinyPolicyConfig | None = None,
    root: str | Path | None = None,
    prefix: str = "tiny",
) -> Path:
    """Return the tiny checkpoint directory for ``dims``, building it first if it is missing.

    Args:
        dims: The robot (state/action dims, camera keys, stats) the policy is shaped for.
        config: Architecture and seed; default :class:`TinyPolicyConfig`.
        root: Parent directory; default ``cache_dir()/models`` (``$VLA_ROS_CACHE`` overrides).
        prefix: First part of the directory name (``<prefix>-<hash>``).
    """
    config = config or TinyPolicyConfig()
    final = tiny_checkpoint_dir(dims, config, root, prefix=prefix)
    if is_complete(final):
        return final
    with _BUILD_LOCK:
        if not is_complete(final):
            _build_and_rename(dims, config, final)
    return final


def ensure_full_size_checkpoint(
    dims: RobotDims, config: TinyPolicyConfig | None = None, root: str | Path | None = None
) -> Path:
    """SmolVLA at its real size (:meth:`TinyPolicyConfig.smolvla_base`), random weights, built
    once into ``<root>/smolvla_base-<hash>`` (root: ``cache_dir()/models``) and reused.

    The build takes about a minute and ~3 GB of memory; the checkpoint is ~1.8 GB
    (450M float32 parameters). Its actions are not meaningful: it is for timing, memory and
    numerics (fp32 vs bf16) of the real architecture, and as a distillation teacher stand-in.
    """
    return ensure_tiny_checkpoint(dims, config or TinyPolicyConfig.smolvla_base(), root, prefix="smolvla_base")


def _build_and_rename(dims: RobotDims, config: TinyPolicyConfig, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        logger.info("building the tiny SmolVLA policy into %s", final)
        build_tiny_checkpoint(dims, config, tmp, final_dir=final)
        if final.exists() and not is_complete(final):
            shutil.rmtree(final, ignore_errors=True)  # a leftover from an interrupted old build
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_complete(final):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_tiny_backbone(directory: str | Path, config: TinyPolicyConfig) -> None:
    """Write a SmolVLM backbone description (config, tokenizer, processor files) to ``directory``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    directory = Path(directory)
    specials = list(dict.fromkeys([*SPECIAL_TOKENS.values(), *EXTRA_SPECIAL_TOKENS.values()]))
    bpe = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(INSTRUCTION_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        extra_special_tokens=EXTRA_SPECIAL_TOKENS,
        model_max_length=512,
        **SPECIAL_TOKENS,
    )

    size = {"longest_edge": config.image_size}
    image_seq_len = config.image_seq_len  # after the pixel shuffle
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        image_seq_len=image_seq_len,
    )
    processor.save_pretrained(directory)

    vlm_config = SmolVLMConfig(
        vision_config={
            "hidden_size": config.vision_hidden_size,
            "intermediate_size": config.vision_intermediate_size or 2 * config.vision_hidden_size,
            "num_hidden_layers": config.vision_layers,
            "num_attention_heads": config.vision_heads,
            "image_size": config.image_size,
            "patch_size": config.patch_size,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": config.text_hidden_size,
            "intermediate_size": config.text_intermediate_size or 2 * config.text_hidden_size,
            "num_hidden_layers": config.backbone_text_layers or config.text_layers,
            "num_attention_heads": config.text_heads,
            "num_key_value_heads": config.text_kv_heads,
            "vocab_size": max(len(tokenizer), config.text_vocab_size or 0),
            "max_position_embeddings": 1024,
            "rms_norm_eps": 1e-5,
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        },
        scale_factor=config.scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(EXTRA_SPECIAL_TOKENS["image_token"]),
        pad_token_id=tokenizer.pad_token_id,
    )
    vlm_config.save_pretrained(directory)


def build_tiny_checkpoint(
    dims: RobotDims, config: TinyPolicyConfig, output_dir: str | Path, final_dir: str | Path | None = None
) -> Path:
    """Build the tiny policy into ``output_dir`` (which must exist or be creatable).

    Args:
        dims: The robot the policy is shaped for.
        config: Architecture and seed.
        output_dir: Where the files are written.
        final_dir: Where the directory will live once renamed (``vlm_model_name`` and the
            tokenizer path in the saved files point there); default ``output_dir``.
    """
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.processor import TokenizerProcessorStep
    from lerobot.utils.constants import ACTION, OBS_STATE

    output_dir = Path(output_dir)
    final_dir = Path(final_dir) if final_dir is not None else output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    backbone = output_dir / BACKBONE_DIRNAME
    write_tiny_backbone(backbone, config)

    input_features = {OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(dims.state_dim,))}
    for key in dims.image_keys:
        input_features[key] = PolicyFeature(type=FeatureType.VISUAL, shape=tuple(dims.image_shape))
    policy_config = SmolVLAConfig(
        input_features=input_features,
        output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(dims.action_dim,))},
        device="cpu",
        push_to_hub=False,
        vlm_model_name=str(backbone),
        load_vlm_weights=False,
        resize_imgs_with_padding=(config.image_size, config.image_size),
        chunk_size=config.chunk_size,
        n_action_steps=config.chunk_size,
        num_steps=config.num_steps,
        tokenizer_max_length=config.tokenizer_max_length,
        num_vlm_layers=config.text_layers,
        num_expert_layers=-1,
        self_attn_every_n_layers=2,
        expert_width_multiplier=config.expert_width_multiplier,
        max_state_dim=max(32, dims.state_dim),
        max_action_dim=max(32, dims.action_dim),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        policy = SmolVLAPolicy(policy_config)
    stats = {
        feature: {name: torch.tensor(values, dtype=torch.float32) for name, values in entry.items()}
        for feature, entry in dims.stats().items()
    }
    preprocessor, postprocessor = make_pre_post_processors(policy_config, dataset_stats=stats)

    # The saved files name the backbone where it will live after the rename.
    policy.config.vlm_model_name = str(final_dir / BACKBONE_DIRNAME)
    for step in preprocessor.steps:
        if isinstance(step, TokenizerProcessorStep):
            step.tokenizer_name = str(final_dir / BACKBONE_DIRNAME)
    policy.save_pretrained(output_dir)
    preprocessor.save_pretrained(output_dir)
    postprocessor.save_pretrained(output_dir)
    (output_dir / SPEC_FILENAME).write_text(json.dumps(tiny_spec(dims, config), indent=2, sort_keys=True))
    return output_dir
