"""Speed levers of a loaded SmolVLA policy, and the instruments that measure them.

Levers (set per model variant in ``config/models/<name>.yaml`` or by launch arguments, applied
after loading by :func:`apply_load_options`):

- ``dtype: bfloat16``: the weights of the VLM backbone (vision tower, connector, text layers) and
  of the action expert in bf16. The small state/action/time projections, the attention softmax
  (LeRobot upcasts it) and the flow-matching integration stay float32, so the chunk is float32.
- ``num_steps``: flow-matching denoising steps (SmolVLA: 10); each step is one pass of the action
  expert over the chunk, so the denoise time scales with it.
- ``image_size``: the side of the square every camera image is resized to (with padding) before
  the vision encoder (SmolVLA: 512). The vision tower's cost grows with the square of it;
  256 gives 16 instead of 64 image tokens per camera.
- ``vision_int8``: the vision tower's Linear layers (attention projections and MLP, ~80% of its
  work) with int8 weights (per output channel) and int8 activations quantized per call
  (dynamic quantization, ``torch.ao``'s x86 / oneDNN kernels: AVX512-VNNI or AMX on CPUs that
  have them; activations in 8 bits there, 7 bits elsewhere, see :data:`X86_INT8_FLAGS`). The
  rest of the tower (patch embedding, layer norms, attention) keeps the policy's dtype. CPU only.
- CPU bf16 kernels (automatic with bf16 on a CPU whose oneDNN has bf16 kernels;
  :func:`use_cpu_kernels`): every bf16 Linear layer keeps its weight in oneDNN's blocked layout
  (:func:`prepack_linears`), so the matrix multiply no longer reorders the weight at every call
  (the action expert's steps, 50 rows against a fresh weight in each layer, gain the most), and
  the vision tower's attention runs one head at a time as two bf16 matrix multiplies around a
  softmax (:func:`cpu_attention_forward`: each head's 1024x1024 scores stay in cache; ~1.6x
  faster than torch's CPU flash kernel). Same arithmetic as transformers' eager bf16 path
  (bf16 products, float32 accumulation, float32 softmax rounded to bf16).
  ``VLA_ROS_CPU_KERNELS=0`` turns both off.
- SmolVLA's KV cache (``use_cache``, on): the prefix (images, instruction, state) goes through
  the VLM once per chunk and its keys/values are reused by every denoising step. LeRobot 0.4.4's
  ``sample_actions`` fails with it off, so it is not an option here;
  :func:`sample_actions_without_cache` computes the same chunk the uncached way (the prefix
  recomputed at every step) to measure what the cache saves.

Instruments: :class:`StageTimer` (vision / prefill / denoise seconds of each chunk),
:func:`parameter_bytes`, :func:`rss_bytes`. No torch at import.
"""
from __future__ import annotations

import os
import platform
import time
from contextlib import ContextDecorator
from functools import lru_cache
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")

X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic (AVX512-BF16 dot products, AMX)."""

ARM_BF16_FEATURE = "bf16"
"""Arm ``Features`` entry (``/proc/cpuinfo``) of the BF16 extension (BFDOT/BFMMLA)."""

X86_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""x86 CPU flags of int8 dot products that accumulate in 32 bits (VNNI, AMX): with them
``vision_int8`` quantizes activations to the full 8 bits; without them to 7 bits (torch's
default, which avoids the 16-bit saturation of AVX2/AVX512 ``vpmaddubsw``)."""

BF16_ENV = "VLA_ROS_CPU_BF16"
"""Set to 0 or 1 to override the CPU bf16 detection."""

CPU_KERNELS_ENV = "VLA_ROS_CPU_KERNELS"
"""Set to 0 to run bf16 on the CPU with the plain weight layout and torch's attention kernel
(:func:`use_cpu_kernels`)."""

CPU_ATTENTION = "vla_ros_cpu"
"""The name :func:`cpu_attention_forward` is registered under in transformers' attention functions."""

STAGES = ("vision", "prefill", "denoise")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags: x86 ``flags`` and Arm ``Features`` lines of ``/proc/cpuinfo``.

    Args:
        cpuinfo: The text of a cpuinfo file; default: read ``/proc/cpuinfo`` (empty set when
            there is none, e.g. on macOS).
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes in bf16 natively, so bf16 weights are faster than float32.

    Rule: ``$VLA_ROS_CPU_BF16`` (``0``/``1``) when set; else a flag of :data:`X86_BF16_FLAGS`
    (x86: AVX512-BF16 or AMX-BF16) or :data:`ARM_BF16_FEATURE` (Arm) in ``/proc/cpuinfo``;
    else on macOS an Apple-silicon CPU (``arm64``: BF16 from M2 on; M1 emulates it, set the
    variable to 0 there). CPUs without these run bf16 through float32 conversions, slower than
    float32 itself. (``torch.backends.mkldnn`` reports bf16 "supported" on any AVX512 CPU,
    emulated or not, so it does not decide.)

    Args:
        cpuinfo: cpuinfo text to judge instead of this machine's (tests); also disables the
            environment override and the macOS rule.
    """
    if cpuinfo is None:
        env = os.environ.get(BF16_ENV, "").strip()
        if env in ("0", "1"):
            return env == "1"
        if env:
            raise ValueError(f"{BF16_ENV}: expected 0 or 1, got '{env}'")
        return _this_cpu_has_bf16()
    flags = cpu_flags(cpuinfo)
    return bool(flags & set(X86_BF16_FLAGS)) or ARM_BF16_FEATURE in flags


@lru_cache(maxsize=1)
def _this_cpu_has_bf16() -> bool:
    flags = cpu_flags()
    if flags:
        return bool(flags & set(X86_BF16_FLAGS)) or ARM_BF16_FEATURE in flags
    return platform.system() == "Darwin" and platform.machine() == "arm64"


# --------------------------------------------------------------------------- levers


def image_size_step(policy: Any) -> int:
    """Image sides must be multiples of this: vision patch size x connector pixel-shuffle factor."""
    vlm_config = policy.model.vlm_with_expert.config
    return int(vlm_config.vision_config.patch_size) * int(getattr(vlm_config, "scale_factor", 1))


def native_image_size(policy: Any) -> int:
    """The vision encoder's own image size (SmolVLA: 512)."""
    return int(policy.model.vlm_with_expert.config.vision_config.image_size)


def vision_is_int8(policy: Any) -> bool:
    """True when the vision tower's Linear layers are int8 (:func:`quantize_vision_int8`)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    vision = policy.model.vlm_with_expert.get_vlm_model().vision_model
    return any(isinstance(m, DynamicInt8Linear) for m in vision.modules())


@lru_cache(maxsize=2)
def _int8_linear_class(full_range: bool):
    """torch.ao's dynamic int8 Linear taking and returning the input's dtype (the int8 kernel itself
    takes float32); ``full_range``: activations quantized to 8 bits, not 7."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    class Int8Linear(DynamicInt8Linear):
        def forward(self, x):
            import torch

            y = torch.ops.quantized.linear_dynamic(x.float(), self._packed_params._packed_params,
                                                   reduce_range=not full_range)
            return y.to(x.dtype)

    return Int8Linear


def quantize_vision_int8(policy: Any) -> None:
    """Int8 weights + dynamically quantized int8 activations for the vision tower's Linear layers.

    The tower's other layers (patch embedding, layer norms, attention) keep the policy's dtype;
    each int8 layer converts its input to float32 for the int8 kernel and its output back.
    Idempotent.

    Raises:
        ValueError: the policy is not on a CPU, or this torch has no quantized CPU engine.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if vision_is_int8(policy):
        return
    device = next(policy.parameters()).device
    if device.type != "cpu":
        raise ValueError(
            f"vision_int8: int8 kernels run on the CPU only, the policy is on {device}; "
            "set vision_int8 in the variant's cpu: block or leave it false"
        )
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise ValueError("vision_int8: this torch build has no quantized CPU engine; leave vision_int8 false")
    vision = policy.model.vlm_with_expert.get_vlm_model().vision_model
    for module in vision.modules():  # torch.ao quantizes float32 weights
        if type(module) is torch.nn.Linear:
            module.float()
    full_range = bool(cpu_flags() & set(X86_INT8_FLAGS))
    with warnings.catch_warnings():  # torch.ao's notice that eager quantization moves to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(
            vision,
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={torch.nn.Linear: _int8_linear_class(full_range)},
            inplace=True,
        )


@lru_cache(maxsize=1)
def packed_linear_class():
    """The ``PackedLinear`` module class (built on first use: no torch at import)."""
    import torch

    class PackedLinear(torch.nn.Module):
        """A bf16 ``Linear`` whose weight is held in oneDNN's blocked layout (inference only).

        ``weight`` is the packed (opaque, ``torch._mkldnn`` layout) tensor: its ``dtype``,
        ``shape`` and ``device`` are the original's, which is what LeRobot reads from it.
        ``state_dict`` holds the plain weight, so a packed module saves like a ``Linear``.
        """

        def __init__(self, linear: torch.nn.Linear, rows_hint: int) -> None:
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            weight = linear.weight.detach()
            self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint))
            bias = None if linear.bias is None else linear.bias.detach()
            self.register_buffer("bias", bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype != torch.bfloat16:
                raise TypeError(f"PackedLinear takes bfloat16 input, got {x.dtype}")
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

        def plain(self) -> torch.nn.Linear:
            """An ordinary ``Linear`` with the same weights."""
            linear = torch.nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                                     device="cpu", dtype=torch.bfloat16)
            with torch.no_grad():
                linear.weight.copy_(self.weight.to_dense())
                if self.bias is not None:
                    linear.bias.copy_(self.bias)
            return linear

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            destination[prefix + "weight"] = self.weight.to_dense()
            if self.bias is not None:
                destination[prefix + "bias"] = self.bias

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    return PackedLinear


def can_use_cpu_kernels() -> bool:
    """True when this CPU's oneDNN runs bf16 matrix multiplies and :data:`CPU_KERNELS_ENV` is not 0."""
    import torch

    if os.environ.get(CPU_KERNELS_ENV, "").strip() == "0":
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without these oneDNN entry points
        return False


def _swap_linears(module: Any, make) -> int:
    """Replace the children ``make`` converts (it returns None to keep one); returns how many."""
    count = 0
    for name, child in list(module.named_children()):
        new = make(child)
        if new is not None:
            setattr(module, name, new)
            count += 1
        else:
            count += _swap_linears(child, make)
    return count


def prepack_linears(policy: Any) -> int:
    """Hold the weights of the bf16 ``Linear`` layers of the VLM and the action expert in oneDNN's
    blocked layout (:func:`packed_linear_class`), for the CPU.

    A plain bf16 ``Linear`` on the CPU reorders its weight into that layout at every call; with the
    action expert's 50 rows that costs about a third of the multiply. Float32 and int8 layers are
    left as they are. Idempotent; :func:`unpack_linears` undoes it.

    Returns:
        How many layers were packed by this call.

    Raises:
        ValueError: the policy is not on a CPU, or this CPU's oneDNN has no bf16 kernels.
    """
    import torch

    device = next(policy.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"prepacked weights are for the CPU, the policy is on {device}")
    if not can_use_cpu_kernels():
        raise ValueError(f"this CPU's oneDNN has no bf16 matrix multiply (or {CPU_KERNELS_ENV}=0)")
    packed = packed_linear_class()
    rows = int(getattr(policy.config, "chunk_size", 50) or 50)

    def make(child):
        if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16:
            return packed(child, rows)
        return None

    with torch.no_grad():
        return _swap_linears(policy.model.vlm_with_expert, make)  # the VLM and the action expert


def unpack_linears(policy: Any) -> int:
    """Turn every packed layer back into a plain ``Linear``; returns how many."""
    packed = packed_linear_class()

    def make(child):
        return child.plain() if isinstance(child, packed) else None

    return _swap_linears(policy.model.vlm_with_expert, make)


def cpu_attention_forward(module: Any, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                          is_causal=None, **kwargs):
    """Attention for bf16 on a CPU, one head at a time; transformers' attention-function signature.

    ``query``/``key``/``value`` are ``[batch, heads, tokens, head_dim]`` (fewer key/value heads are
    shared, as in grouped-query attention); ``attention_mask`` is additive (or boolean: True =
    attend), broadcast over heads or per head. Per head: scores = (q * scaling) k^T (+ mask),
    softmax over keys (float32 inside, rounded to bf16), times v. Returns ``(output
    [batch, tokens, heads, head_dim], None)`` like transformers' ``sdpa_attention_forward``, to
    which it hands over anything else (another dtype or device, dropout, causal masking).
    """
    import torch

    if (query.device.type != "cpu" or query.dtype != torch.bfloat16 or (dropout and module.training)
            or is_causal or query.dim() != 4):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      is_causal=is_causal, **kwargs)
    batch, heads, _, head_dim = query.shape
    group = heads // key.shape[1]
    scale = head_dim ** -0.5 if scaling is None else scaling
    mask = attention_mask
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=query.dtype).masked_fill_(~mask, float("-inf"))
        elif not mask.any():  # transformers passes an all-zero mask when nothing is masked
            mask = None
        else:
            mask = mask.to(query.dtype)
    scaled = query * scale
    out = torch.empty_like(query)
    for b in range(batch):
        for h in range(heads):
            k, v = key[b, h // group], value[b, h // group]
            if mask is None:
                scores = torch.mm(scaled[b, h], k.t())
            else:
                scores = torch.addmm(mask[b if mask.shape[0] > 1 else 0, h if mask.shape[1] > 1 else 0],
                                     scaled[b, h], k.t())
            torch.mm(torch.softmax(scores, -1), v, out=out[b, h])
    return out.transpose(1, 2), None


def _register_cpu_attention() -> None:
    from transformers import AttentionInterface

    if CPU_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(CPU_ATTENTION, cpu_attention_forward)


def use_cpu_kernels(policy: Any, on: bool = True) -> None:
    """Switch the CPU bf16 kernels on or off: :func:`prepack_linears` / :func:`unpack_linears`, and
    :func:`cpu_attention_forward` for the vision tower (off: the attention it had when loaded).

    Raises:
        ValueError: ``on`` and the policy is not on a CPU, or this CPU cannot (see :func:`prepack_linears`).
    """
    vision_config = policy.model.vlm_with_expert.get_vlm_model().vision_model.config
    if not on:
        unpack_linears(policy)
        previous = getattr(vision_config, "_vla_ros_attention", None)
        if previous is not None:
            vision_config._attn_implementation = previous
            del vision_config._vla_ros_attention
        return
    prepack_linears(policy)
    _register_cpu_attention()
    if vision_config._attn_implementation != CPU_ATTENTION:
        vision_config._vla_ros_attention = vision_config._attn_implementation
        vision_config._attn_implementation = CPU_ATTENTION


def cpu_kernels_in_use(policy: Any) -> bool:
    """True when :func:`use_cpu_kernels` is on for this policy (its Linear layers are packed)."""
    packed = packed_linear_class()
    return any(isinstance(m, packed) for m in policy.model.vlm_with_expert.modules())


def apply_load_options(
    policy: Any,
    *,
    dtype: str | None = None,
    num_steps: int | None = None,
    image_size: int | None = None,
    vision_int8: bool | None = None,
    cpu_kernels: bool | None = None,
) -> dict[str, Any]:
    """Apply the speed levers to a loaded ``SmolVLAPolicy`` in place.

    Args:
        policy: The policy (its ``config`` is what LeRobot reads at every inference).
        dtype: ``bfloat16``: VLM and action expert weights to bf16 (projections stay float32);
            ``float32`` or ``None``: leave the weights as they are.
        num_steps: Flow-matching steps (``config.num_steps``); ``None``: keep.
        image_size: Square image side (``config.resize_imgs_with_padding``); ``None``: keep. Must
            be a multiple of :func:`image_size_step` and at most the encoder's native size.
        vision_int8: ``True``: :func:`quantize_vision_int8` (after the dtype; CPU only, cannot be
            undone on the loaded policy); ``False`` or ``None``: leave the vision tower as it is.
        cpu_kernels: ``True`` / ``False``: :func:`use_cpu_kernels` on / off; ``None``: on when
            ``dtype`` is ``bfloat16``, the policy is on a CPU and :func:`can_use_cpu_kernels`,
            else leave them as they are.

    Returns:
        What the policy now runs with: ``{"dtype", "num_steps", "image_size", "vision_int8",
        "cpu_kernels"}``.

    Raises:
        ValueError: a value the policy cannot run with (the message names the option).
    """
    import torch

    config = policy.config
    if num_steps is not None:
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps: expected an integer >= 1, got {num_steps!r}")
        config.num_steps = int(num_steps)
    if image_size is not None:
        step, native = image_size_step(policy), native_image_size(policy)
        if isinstance(image_size, bool) or int(image_size) != image_size or image_size < step or image_size % step:
            raise ValueError(
                f"image_size: {image_size!r} is not a multiple of {step} (this policy's vision patch size "
                f"x pixel-shuffle factor); e.g. {', '.join(str(v) for v in range(step * 4, native + 1, step * 2))}"
            )
        if image_size > native:
            raise ValueError(f"image_size: {image_size} is larger than the vision encoder's {native}; use <= {native}")
        config.resize_imgs_with_padding = (int(image_size), int(image_size))
    if vision_int8 not in (None, True, False):
        raise ValueError(f"vision_int8: expected true or false, got {vision_int8!r}")
    if cpu_kernels not in (None, True, False):
        raise ValueError(f"cpu_kernels: expected true or false, got {cpu_kernels!r}")
    if dtype not in (None, "float32", "bfloat16"):
        raise ValueError(f"dtype: expected float32 or bfloat16, got {dtype!r}")
    vlm_with_expert = policy.model.vlm_with_expert
    if dtype is not None or vision_int8:  # dtype changes and quantization need plain layers
        use_cpu_kernels(policy, False)
    if dtype == "bfloat16":
        vlm_with_expert.vlm.to(torch.bfloat16)
        vlm_with_expert.lm_expert.to(torch.bfloat16)
    if vision_int8:
        quantize_vision_int8(policy)
    if cpu_kernels is None and dtype == "bfloat16":
        cpu_kernels = next(policy.parameters()).device.type == "cpu" and can_use_cpu_kernels()
    if cpu_kernels is not None:
        use_cpu_kernels(policy, cpu_kernels)
    return current_options(policy)


def current_options(policy: Any) -> dict[str, Any]:
    """``{"dtype", "num_steps", "image_size", "vision_int8", "cpu_kernels"}`` the policy runs with
    (dtype: of the VLM's text layers)."""
    size = policy.config.resize_imgs_with_padding
    dtype = next(policy.model.vlm_with_expert.get_vlm_model().text_model.parameters()).dtype
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "num_steps": int(policy.config.num_steps),
        "image_size": int(size[0]) if size else None,
        "vision_int8": vision_is_int8(policy),
        "cpu_kernels": cpu_kernels_in_use(policy),
    }


# --------------------------------------------------------------------------- instruments


def parameter_bytes(module: Any) -> int:
    """Bytes held by a module's parameters and buffers."""
    tensors = [*module.parameters(), *module.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))


def rss_bytes() -> int:
    """Resident memory of this process now (``/proc/self/statm``; psutil elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


class StageTimer(ContextDecorator):
    """Time the stages of SmolVLA inference by wrapping the policy's submodules while active.

    - ``vision``: ``vlm_with_expert.embed_image`` (vision tower + connector), all cameras;
    - ``prefill``: the VLM forward over the prefix that fills the KV cache
      (``vlm_with_expert.forward(..., fill_kv_cache=True)``);
    - ``denoise``: ``model.denoise_step``, all steps (the action expert over the chunk).

    Seconds add up over calls; :meth:`reset` before each chunk and read :attr:`seconds`. On a
    CUDA device each stage synchronizes so the times are the device's.

    Args:
        policy: A loaded ``SmolVLAPolicy``.
    """

    def __init__(self, policy: Any) -> None:
        self._policy = policy
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._patched: list[tuple[Any, str]] = []

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)

    def _wrap(self, owner: Any, name: str, stage_of) -> None:
        import torch

        inner = getattr(owner, name)
        cuda = any(p.is_cuda for p in self._policy.parameters())

        def timed(*args, **kwargs):
            stage = stage_of(kwargs)
            if stage is None:
                return inner(*args, **kwargs)
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            self.seconds[stage] += time.perf_counter() - t0
            self.calls[stage] += 1
            return out

        setattr(owner, name, timed)  # an instance attribute shadows the class's method
        self._patched.append((owner, name))

    def __enter__(self) -> "StageTimer":
        model = self._policy.model
        vwe = model.vlm_with_expert
        self._wrap(vwe, "embed_image", lambda kw: "vision")
        self._wrap(vwe, "forward", lambda kw: "prefill" if kw.get("fill_kv_cache") else None)
        self._wrap(model, "denoise_step", lambda kw: "denoise")
        return self

    def __exit__(self, *exc) -> None:
        while self._patched:
            owner, name = self._patched.pop()
            delattr(owner, name)


def sample_actions_without_cache(model: Any, images, img_masks, lang_tokens, lang_masks, state, noise=None, **_):
    """``VLAFlowMatching.sample_actions`` with the KV cache off: at every denoising step the
    prefix (image, language and state embeddings) goes through the VLM again together with the
    noisy actions, as in LeRobot's training forward. Same result as the cached path up to
    rounding; the vision tower still runs once per chunk.

    Install on a policy with :func:`without_kv_cache` (LeRobot 0.4.4's own ``use_cache=False``
    path fails in ``sample_actions``).
    """
    import torch
    from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

    bsize = state.shape[0]
    device = state.device
    if noise is None:
        noise = model.sample_noise((bsize, model.config.chunk_size, model.config.max_action_dim), device)
    prefix_embs, prefix_pad_masks, prefix_att_masks = model.embed_prefix(
        images, img_masks, lang_tokens, lang_masks, state=state
    )
    num_steps = model.config.num_steps
    dt = -1.0 / num_steps
    x_t = noise
    for step in range(num_steps):
        t = torch.full((bsize,), 1.0 + step * dt, dtype=torch.float32, device=device)
        suffix_embs, suffix_pad_masks, suffix_att_masks = model.embed_suffix(x_t, t)
        pad_masks = torch.cat([prefix_pad_masks, suffix_pad_masks], dim=1)
        att_masks = torch.cat([prefix_att_masks, suffix_att_masks], dim=1)
        (_, suffix_out), _ = model.vlm_with_expert.forward(
            attention_mask=make_att_2d_masks(pad_masks, att_masks),
            position_ids=torch.cumsum(pad_masks, dim=1) - 1,
            past_key_values=None,
            inputs_embeds=[prefix_embs, suffix_embs],
            use_cache=False,
            fill_kv_cache=False,
        )
        suffix_out = suffix_out[:, -model.config.chunk_size :].to(dtype=torch.float32)
        x_t = x_t + dt * model.action_out_proj(suffix_out)
    return x_t


class without_kv_cache(ContextDecorator):
    """While active, the policy samples with :func:`sample_actions_without_cache`."""

    def __init__(self, policy: Any) -> None:
        self._model = policy.model

    def __enter__(self) -> "without_kv_cache":
        model = self._model
        self._model.sample_actions = lambda *a, **k: sample_actions_without_cache(model, *a, **k)
        return self

    def __exit__(self, *exc) -> None:
        del self._model.sample_actions
