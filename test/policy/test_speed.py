"""Device/dtype rules and the speed levers (dtype, num_steps, image_size, KV cache) on the tiny policy."""
from __future__ import annotations

import numpy as np
import pytest

from vla_ros.policy import speed
from vla_ros.policy.loading import resolve_device, resolve_dtype
from vla_ros.policy.variants import load_variant

X86_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"
X86_PLAIN = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
ARM_PLAIN = "Features\t: fp asimd evtstrm aes crc32\n"


def test_native_bf16_detection_from_cpuinfo():
    assert speed.cpu_has_native_bf16(X86_BF16)
    assert speed.cpu_has_native_bf16(X86_AMX)
    assert speed.cpu_has_native_bf16(ARM_BF16)
    assert not speed.cpu_has_native_bf16(X86_PLAIN)
    assert not speed.cpu_has_native_bf16(ARM_PLAIN)
    assert not speed.cpu_has_native_bf16("")
    assert "avx512_bf16" in speed.cpu_flags(X86_BF16)


def test_native_bf16_environment_override(monkeypatch):
    monkeypatch.setenv(speed.BF16_ENV, "1")
    assert speed.cpu_has_native_bf16()
    monkeypatch.setenv(speed.BF16_ENV, "0")
    assert not speed.cpu_has_native_bf16()
    monkeypatch.setenv(speed.BF16_ENV, "yes")
    with pytest.raises(ValueError, match="VLA_ROS_CPU_BF16: expected 0 or 1"):
        speed.cpu_has_native_bf16()


@pytest.mark.parametrize("native, allowed, expected", [
    ("1", True, "bfloat16"),   # a CPU with avx512_bf16 / amx_bf16 and a variant that allows it
    ("1", False, "float32"),   # the variant does not allow bf16 on the CPU
    ("0", True, "float32"),    # bf16 would be emulated: slower than float32
])
def test_auto_dtype_on_cpu(monkeypatch, native, allowed, expected):
    monkeypatch.setenv(speed.BF16_ENV, native)
    assert resolve_dtype("auto", "cpu", cpu_bf16=allowed) == expected


def test_explicit_dtypes_and_other_devices(monkeypatch):
    monkeypatch.setenv(speed.BF16_ENV, "0")
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"  # an explicit choice is kept
    assert resolve_dtype("float32", "cpu", cpu_bf16=True) == "float32"
    assert resolve_dtype("auto", "mps", cpu_bf16=True) == "float32"
    assert resolve_dtype(" BFloat16 ", "cpu") == "bfloat16"
    with pytest.raises(ValueError, match="dtype: invalid value 'fp16'; valid: auto, float32, bfloat16"):
        resolve_dtype("fp16", "cpu")


def test_device_rules():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else
                                      "mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here; use device:=cpu"):
            resolve_device("cuda:0")


def chunk(runtime, seed=3):
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for k in runtime.image_keys}
    state = runtime.normalization_stats()["observation.state"]["mean"].astype(np.float32)
    return runtime.predict_chunk(images, state, "pick up the red cube", seed=seed)


@pytest.fixture(scope="module")
def bf16_runtime(tiny_cache, tiny_dir, robot_dims):
    from vla_ros.policy.runtime import make_runtime

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLA_ROS_CACHE", str(tiny_cache))
        return make_runtime("tiny", robot_dims=robot_dims, dtype="bfloat16", warmup=False)


def test_bf16_chunk_is_close_to_fp32(runtime, bf16_runtime, robot_dims):
    import torch

    assert bf16_runtime.dtype == "bfloat16" and bf16_runtime.options["dtype"] == "bfloat16"
    model = bf16_runtime.loaded.policy.model
    assert next(model.vlm_with_expert.vlm.parameters()).dtype == torch.bfloat16
    assert next(model.vlm_with_expert.lm_expert.parameters()).dtype == torch.bfloat16
    assert model.action_out_proj.weight.dtype == torch.float32  # projections stay float32
    reference, actions = chunk(runtime), chunk(bf16_runtime)
    assert actions.dtype == np.float32 and np.isfinite(actions).all()
    std = np.asarray(robot_dims.stats()["action"]["std"])
    error = np.abs(actions - reference) / std
    spread = np.abs(reference - reference.mean(axis=0)) / std
    assert error.max() < 0.05, error.max()  # within 5% of each joint's std
    assert error.max() < 0.1 * spread.max()  # and far below how much the chunk itself moves


def test_levers_change_the_loaded_policy(use_tiny_cache, robot_dims):
    from vla_ros.policy.runtime import make_runtime

    runtime = make_runtime("tiny", robot_dims=robot_dims, num_steps=4, image_size=32, warmup=False)
    config = runtime.loaded.policy.config
    assert (config.num_steps, tuple(config.resize_imgs_with_padding)) == (4, (32, 32))
    assert runtime.options == {"dtype": "float32", "num_steps": 4, "image_size": 32, "vision_int8": False,
                               "cpu_kernels": False}
    with speed.StageTimer(runtime.loaded.policy) as timer:
        actions = chunk(runtime)
    assert actions.shape == (50, 6) and np.isfinite(actions).all()
    assert timer.calls == {"vision": 2, "prefill": 1, "denoise": 4}  # two cameras, one prefix, 4 steps
    assert all(v > 0 for v in timer.seconds.values())
    # the instruments are gone afterwards
    assert "denoise_step" not in vars(runtime.loaded.policy.model)


def test_variant_file_levers_per_device(tmp_path, tiny_dir, robot_dims, monkeypatch):
    """A variant's cpu: block and cpu_bf16 reach the loaded policy when the device is the CPU."""
    from vla_ros.policy.runtime import load_runtime

    (tmp_path / "fast.yaml").write_text(
        f"checkpoint: {tiny_dir}\ndevice: auto\ndtype: auto\ncpu_bf16: true\n"
        "cpu:\n  num_steps: 3\n  image_size: 48\ncuda:\n  num_steps: 10\n"
    )
    monkeypatch.setenv(speed.BF16_ENV, "1")
    runtime = load_runtime(load_variant("fast", device_override="cpu", models_dir=tmp_path), robot_dims)
    assert runtime.options == {"dtype": "bfloat16", "num_steps": 3, "image_size": 48, "vision_int8": False,
                               "cpu_kernels": speed.can_use_cpu_kernels()}
    assert chunk(runtime).shape == (50, 6)
    monkeypatch.setenv(speed.BF16_ENV, "0")
    runtime = load_runtime(load_variant("fast", device_override="cpu", models_dir=tmp_path), robot_dims)
    assert runtime.options["dtype"] == "float32" and runtime.dtype == "float32"


def test_vision_int8_quantizes_the_vision_linears_and_stays_close(runtime, tmp_path, tiny_dir, robot_dims):
    """vision_int8 (from a variant's cpu: block) makes every Linear of the vision tower int8,
    with float32 and bf16 for the rest of the policy, and the chunk stays close to float32."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from vla_ros.policy.runtime import load_runtime

    (tmp_path / "int8.yaml").write_text(f"checkpoint: {tiny_dir}\ndevice: cpu\ncpu:\n  vision_int8: true\n")
    reference = chunk(runtime)
    std = np.asarray(robot_dims.stats()["action"]["std"])
    spread = np.abs(reference - reference.mean(axis=0)) / std
    for dtype in ("float32", "bfloat16"):
        variant = load_variant("int8", models_dir=tmp_path, dtype_override=dtype)
        assert variant.for_device("cpu").vision_int8 and not variant.for_device("cuda").vision_int8
        quantized = load_runtime(variant, robot_dims)
        assert quantized.options == {"dtype": dtype, "num_steps": 10, "image_size": 64, "vision_int8": True,
                                     "cpu_kernels": dtype == "bfloat16" and speed.can_use_cpu_kernels()}
        vlm = quantized.loaded.policy.model.vlm_with_expert.get_vlm_model()
        linears = [m for m in vlm.vision_model.modules() if isinstance(m, (torch.nn.Linear, DynamicInt8Linear))]
        assert linears and all(isinstance(m, DynamicInt8Linear) for m in linears)
        assert not any(isinstance(m, DynamicInt8Linear) for m in vlm.text_model.modules())
        assert next(vlm.text_model.parameters()).dtype == getattr(torch, dtype)
        actions = chunk(quantized)
        assert actions.dtype == np.float32 and np.isfinite(actions).all()
        error = np.abs(actions - reference) / std
        assert error.max() < 0.05, (dtype, error.max())
        assert error.max() < 0.1 * spread.max()
        # idempotent, and a later bf16 cast keeps the int8 tower runnable
        speed.apply_load_options(quantized.loaded.policy, dtype="bfloat16", vision_int8=True)
        assert np.isfinite(chunk(quantized)).all()


def test_cpu_kernels_compute_the_same_chunk(bf16_runtime, monkeypatch):
    """On a CPU with oneDNN bf16, a bf16 policy runs with prepacked Linear weights and the per-head
    vision attention: the same chunk as torch's own kernels, the same state_dict, and switched
    off before a dtype change."""
    import torch

    if not speed.can_use_cpu_kernels():
        pytest.skip("this CPU's oneDNN has no bf16 kernels: the CPU kernels are not used here")
    policy = bf16_runtime.loaded.policy
    packed_class = speed.packed_linear_class()
    vlm_with_expert = policy.model.vlm_with_expert
    vision_config = vlm_with_expert.get_vlm_model().vision_model.config
    assert bf16_runtime.options["cpu_kernels"]
    assert vision_config._attn_implementation == speed.CPU_ATTENTION
    assert not any(type(m) is torch.nn.Linear for m in vlm_with_expert.modules())  # every bf16 Linear
    layers = [m for m in vlm_with_expert.modules() if isinstance(m, packed_class)]
    assert layers and all(m.weight.dtype == torch.bfloat16 for m in layers)
    assert policy.model.action_out_proj.weight.dtype == torch.float32  # float32 projections untouched
    fast_chunk, fast_state = chunk(bf16_runtime), policy.state_dict()

    try:
        assert speed.apply_load_options(policy, cpu_kernels=False)["cpu_kernels"] is False
        assert vision_config._attn_implementation == "sdpa"  # what it was loaded with
        assert not any(isinstance(m, packed_class) for m in vlm_with_expert.modules())
        plain_chunk, plain_state = chunk(bf16_runtime), policy.state_dict()
        assert fast_state.keys() == plain_state.keys()
        assert all(torch.equal(fast_state[k], plain_state[k]) for k in plain_state)
        np.testing.assert_allclose(fast_chunk, plain_chunk, atol=1e-2 * np.abs(plain_chunk).max())

        monkeypatch.setenv(speed.CPU_KERNELS_ENV, "0")  # the opt-out
        assert not speed.apply_load_options(policy, dtype="bfloat16")["cpu_kernels"]
        monkeypatch.delenv(speed.CPU_KERNELS_ENV)
        assert speed.apply_load_options(policy, dtype="bfloat16")["cpu_kernels"]
        assert speed.apply_load_options(policy, cpu_kernels=True)["cpu_kernels"]  # idempotent
        np.testing.assert_array_equal(chunk(bf16_runtime), fast_chunk)
        # any dtype option switches them off first (float32 = leave the weights as they are: plain bf16)
        assert speed.apply_load_options(policy, dtype="float32")["cpu_kernels"] is False
        np.testing.assert_allclose(chunk(bf16_runtime), plain_chunk, atol=1e-6)
        with pytest.raises(ValueError, match="cpu_kernels: expected true or false"):
            speed.apply_load_options(policy, cpu_kernels="yes")
    finally:
        speed.apply_load_options(policy, dtype="bfloat16")  # as the module's fixture was
    assert bf16_runtime.options["cpu_kernels"]


@pytest.mark.parametrize("case", ["no mask", "all-zero mask", "additive mask", "boolean mask", "grouped kv"])
def test_cpu_attention_matches_sdpa(case):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(0)
    module = torch.nn.Module().eval()
    module.is_causal = False
    kv_heads = 2 if case == "grouped kv" else 4
    q = torch.randn(2, 4, 96, 32)
    k, v = torch.randn(2, kv_heads, 96, 32), torch.randn(2, kv_heads, 96, 32)
    if kv_heads != 4:
        module.num_key_value_groups = 4 // kv_heads
    mask = None
    if case == "all-zero mask":
        mask = torch.zeros(2, 1, 96, 96)
    elif case in ("additive mask", "boolean mask"):
        keep = torch.rand(2, 1, 96, 96) > 0.3
        keep[..., 0] = True
        mask = keep if case == "boolean mask" else torch.zeros(2, 1, 96, 96).masked_fill(~keep, -1e4)
    bf16 = [t.bfloat16() for t in (q, k, v)]
    bf16_mask = mask.bfloat16() if mask is not None and mask.dtype != torch.bool else mask
    out, weights = speed.cpu_attention_forward(module, *bf16, bf16_mask, scaling=0.2)
    reference, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.2)
    assert weights is None and out.shape == reference.shape == (2, 96, 4, 32) and out.dtype == torch.bfloat16
    assert (out.float() - reference).abs().max() < 0.03
    # float32 goes to torch's kernel unchanged
    same, _ = speed.cpu_attention_forward(module, q, k, v, mask, scaling=0.2)
    torch.testing.assert_close(same, reference)


def test_vision_int8_is_cpu_only_and_boolean(runtime, tmp_path, tiny_dir):
    with pytest.raises(ValueError, match="vision_int8: expected true or false"):
        speed.apply_load_options(runtime.loaded.policy, vision_int8="yes")
    (tmp_path / "bad.yaml").write_text(f"checkpoint: {tiny_dir}\ncpu:\n  vision_int8: 1\n")
    with pytest.raises(ValueError, match="cpu: vision_int8: expected true or false, got 1"):
        load_variant("bad", models_dir=tmp_path)


def test_bad_lever_values_are_named(use_tiny_cache, robot_dims):
    from vla_ros.policy.runtime import make_runtime

    with pytest.raises(ValueError, match="image_size: 40 is not a multiple of 16"):
        make_runtime("tiny", robot_dims=robot_dims, image_size=40, warmup=False)
    with pytest.raises(ValueError, match="model 'tiny'.*larger than the vision encoder's 64"):
        make_runtime("tiny", robot_dims=robot_dims, image_size=128, warmup=False)


def test_kv_cache_off_gives_the_same_chunk(runtime):
    """The uncached reference path (prefix recomputed every step) matches SmolVLA's cached one."""
    policy = runtime.loaded.policy
    cached = chunk(runtime)
    with speed.StageTimer(policy) as timer, speed.without_kv_cache(policy):
        uncached = chunk(runtime)
    assert timer.calls["denoise"] == 0 and timer.calls["prefill"] == 0  # really the other path
    np.testing.assert_allclose(uncached, cached, atol=1e-3)
    assert "sample_actions" not in vars(policy.model)


def test_memory_instruments(runtime):
    policy = runtime.loaded.policy
    n = sum(p.numel() for p in policy.parameters())
    assert speed.parameter_bytes(policy) >= 4 * n
    assert speed.rss_bytes() > speed.parameter_bytes(policy)
