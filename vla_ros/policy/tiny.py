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

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size or (self.image_size // self.patch_size) % 2:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of 2 * patch_size ({self.patch_size})"
            )
        if self.text_hidden_size % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError("text_hidden_size must divide by text_heads, text_heads by text_kv_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must divide by vision_heads")

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> "TinyPolicyConfig":
        """Build from a mapping (the variant's ``build:`` block); unknown keys raise ValueError."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"tiny build options: unknown {unknown}; valid: {sorted(known)}")
        return cls(**options)


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
        "config": asdict(config),
        "versions": _versions(),
    }


def tiny_checkpoint_dir(
    dims: RobotDims, config: TinyPolicyConfig | None = None, root: str | Path | None = None
) -> Path:
    """Where the tiny checkpoint for ``dims`` lives: ``<root>/tiny-<hash>`` (root: cache/models)."""
    config = config or TinyPolicyConfig()
    blob = json.dumps(tiny_spec(dims, config), sort_keys=True).encode()
    digest = hashlib.sha256(blob).hexdigest()[:12]
    base = (Path(root) if root is not None else cache_dir() / "models").expanduser().absolute()
    return base / f"tiny-{digest}"


def is_complete(checkpoint_dir: Path) -> bool:
    return all(
        (checkpoint_dir / name).is_file()
        for name in ("config.json", "model.safetensors", "policy_preprocessor.json", SPEC_FILENAME)
    )


def ensure_tiny_checkpoint(
    dims: RobotDims, config: TinyPolicyConfig | None = None, root: str | Path | None = None
) -> Path:
    """Return the tiny checkpoint directory for ``dims``, building it first if it is missing.

    Args:
        dims: The robot (state/action dims, camera keys, stats) the policy is shaped for.
        config: Architecture and seed; default :class:`TinyPolicyConfig`.
        root: Parent directory; default ``cache_dir()/models`` (``$VLA_ROS_CACHE`` overrides).
    """
    config = config or TinyPolicyConfig()
    final = tiny_checkpoint_dir(dims, config, root)
    if is_complete(final):
        return final
    with _BUILD_LOCK:
        if not is_complete(final):
            _build_and_rename(dims, config, final)
    return final


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
    image_seq_len = (config.image_size // config.patch_size) ** 2 // 4  # after the 2x2 pixel shuffle
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
            "intermediate_size": 2 * config.vision_hidden_size,
            "num_hidden_layers": config.vision_layers,
            "num_attention_heads": config.vision_heads,
            "image_size": config.image_size,
            "patch_size": config.patch_size,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": config.text_hidden_size,
            "intermediate_size": 2 * config.text_hidden_size,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": config.text_heads,
            "num_key_value_heads": config.text_kv_heads,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 1024,
            "rms_norm_eps": 1e-5,
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        },
        scale_factor=2,
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
