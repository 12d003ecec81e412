"""The training run shared by fine-tuning and distillation, on LeRobot's training pieces.

One step is LeRobot's ``update_policy`` (forward through the objective, backward, gradient clip,
AdamW step, scheduler step); the optimizer and scheduler are the policy's own presets
(``get_optimizer_preset`` / ``get_scheduler_preset``: AdamW, cosine decay with warmup, auto-scaled
to short runs); checkpoints use LeRobot's layout and helpers::

    <output>/
      checkpoints/<step>/pretrained_model/   config.json, model.safetensors, policy_*processor*
      checkpoints/<step>/training_state/     optimizer, scheduler, RNG, step (for --resume)
      checkpoints/last -> <step>
      pretrained_model/                      the final model (what checkpoint:=<output> loads)
      backbone/                              the VLM backbone description (config, tokenizer)
      losses.csv, loss.png                   every step's loss terms, and their plot
      vla_ros_train.json                     what was run (strategy or distillation, options)
"""
from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL_DIR = "pretrained_model"
BACKBONE_DIR = "backbone"
LOSSES_CSV = "losses.csv"
LOSS_PLOT = "loss.png"
RUN_FILE = "vla_ros_train.json"


@dataclass
class RunOptions:
    """Options of one training run.

    Args:
        output: The run's directory (see the module docstring for its layout).
        steps: Total optimisation steps (a resumed run continues up to this number).
        batch_size: Frames per step.
        lr: Peak learning rate; ``None``: the policy's preset (SmolVLA: 1e-4).
        save_freq: Save a checkpoint every this many steps (and at the end); 0: only at the end.
        seed: Seed of noise, time and data order.
        resume: Continue from ``<output>/checkpoints/last``.
        overwrite: Delete a previous run's checkpoints and model in ``output`` first.
        num_workers: DataLoader worker processes.
        progress: Show a tqdm progress bar.
    """

    output: Path
    steps: int
    batch_size: int = 8
    lr: float | None = None
    save_freq: int = 0
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.output = Path(self.output).expanduser().absolute()
        if self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")
        if self.save_freq < 0:
            raise ValueError(f"--save-freq must be >= 0, got {self.save_freq}")


@dataclass
class RunResult:
    """What a run produced."""

    output: Path
    model_dir: Path
    steps: int
    start_step: int
    losses: list[dict[str, float]]
    csv: Path
    plot: Path | None


def check_output(options: RunOptions) -> Path | None:
    """The checkpoint to resume from (or None); refuse to overwrite a previous run's checkpoints."""
    last = options.output / CHECKPOINTS / "last"
    if options.resume:
        if not (last / "training_state").is_dir():
            raise ValueError(f"--resume: '{options.output}' has no {CHECKPOINTS}/last/training_state to resume from; "
                             "drop --resume to start a new run")
        return last.resolve()
    previous = [options.output / CHECKPOINTS, options.output / FINAL_DIR]
    if options.overwrite:
        for path in previous:
            shutil.rmtree(path, ignore_errors=True)
    if any(p.exists() for p in previous):
        raise ValueError(f"--output '{options.output}' already holds a run; pass --resume to continue it, "
                         "--overwrite to replace it, or choose another --output")
    return None


def save_model(directory: Path, policy: Any, preprocessor: Any, postprocessor: Any, backbone: str) -> Path:
    """Save a LeRobot checkpoint (config, weights, processors) whose backbone reference is ``backbone``."""
    from lerobot.processor import TokenizerProcessorStep

    directory.mkdir(parents=True, exist_ok=True)
    loaded_name = policy.config.vlm_model_name
    policy.config.vlm_model_name = backbone
    saved_tokenizers = []
    for step in preprocessor.steps:
        if isinstance(step, TokenizerProcessorStep):
            # saved by name (a tokenizer object is not serialised), as LeRobot's own checkpoints are
            saved_tokenizers.append((step, step.tokenizer, step.tokenizer_name))
            step.tokenizer, step.tokenizer_name = None, backbone
    try:
        policy.save_pretrained(directory)
        preprocessor.save_pretrained(directory)
        postprocessor.save_pretrained(directory)
    finally:
        policy.config.vlm_model_name = loaded_name
        for step, tokenizer, name in saved_tokenizers:
            step.tokenizer, step.tokenizer_name = tokenizer, name
    return directory


class LossLog:
    """``losses.csv``: one row per step (step, lr, grad_norm, then the objective's terms)."""

    def __init__(self, path: Path, terms: tuple[str, ...], keep_until: int | None) -> None:
        self.path = path
        self.columns = ["step", "lr", "grad_norm", *terms]
        self.rows: list[dict[str, float]] = []
        if keep_until is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
            self.rows = [{**row, "step": int(row["step"])} for row in rows if row["step"] <= keep_until]
        self._rewrite()

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)


def plot_losses(rows: list[dict[str, float]], terms: tuple[str, ...], path: Path, title: str) -> Path | None:
    """Plot the loss terms per step (log scale) to ``path`` (PNG); None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    for term in terms:
        values = [r.get(term, float("nan")) for r in rows]
        if any(v > 0 for v in values if math.isfinite(v)):
            ax.plot(steps, values, label=term, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(objective: Any, preprocessor: Any, postprocessor: Any, data: Iterator[dict], dataset: Any,
        options: RunOptions, *, backbone: str, describe: dict[str, Any],
        on_step: Callable[[int, dict[str, float]], None] | None = None) -> RunResult:
    """Train ``objective.policy`` for ``options.steps`` steps and save it.

    Args:
        objective: A :class:`vla_ros.train.objectives.Objective` around the policy to train.
        preprocessor, postprocessor: The policy's LeRobot pipelines (saved with every checkpoint).
        data: Endless raw batches from the dataset (before the preprocessor).
        dataset: The LeRobotDataset (for frame/episode counts).
        options: Steps, batch size, learning rate, output, resumption.
        backbone: The ``vlm_model_name`` the saved checkpoints name.
        describe: What is being run (written to ``vla_ros_train.json``).
        on_step: Called after every step with the step number and its logged values.
    """
    from accelerate import Accelerator
    from lerobot.scripts.lerobot_train import update_policy
    from lerobot.utils.logging_utils import AverageMeter, MetricsTracker
    from lerobot.utils.random_utils import set_seed
    from lerobot.utils.train_utils import (
        get_step_checkpoint_dir,
        load_training_state,
        save_training_state,
        update_last_checkpoint,
    )
    from safetensors.torch import load_file
    from tqdm import tqdm

    policy = objective.policy
    resume_from = check_output(options)
    options.output.mkdir(parents=True, exist_ok=True)
    device = next(policy.parameters()).device
    set_seed(options.seed)

    optim_cfg = policy.config.get_optimizer_preset()
    sched_cfg = policy.config.get_scheduler_preset()
    if options.lr is not None:
        optim_cfg.lr = options.lr
        sched_cfg.peak_lr = options.lr
        sched_cfg.decay_lr = min(sched_cfg.decay_lr, options.lr)
    optimizer = optim_cfg.build(policy.get_optim_params())
    scheduler = sched_cfg.build(optimizer, options.steps)

    start = 0
    if resume_from is not None:
        state = load_file(str(resume_from / FINAL_DIR / "model.safetensors"), device=str(device))
        missing, unexpected = policy.load_state_dict(state, strict=False)
        if unexpected or len(missing) > len(state) // 2:
            raise ValueError(f"--resume: {resume_from} does not hold this model's weights "
                             f"({len(missing)} missing, {len(unexpected)} unexpected)")
        start, optimizer, scheduler = load_training_state(resume_from, optimizer, scheduler)
        logger.info("resuming %s at step %d", options.output, start)
        if start >= options.steps:
            raise ValueError(f"--resume: the run is at step {start} already; raise --steps above it")

    (options.output / RUN_FILE).write_text(json.dumps(
        {**describe, "run": {**asdict(options), "output": str(options.output)}}, indent=2, default=str))
    log = LossLog(options.output / LOSSES_CSV, objective.terms, keep_until=start if resume_from else None)

    accelerator = Accelerator(cpu=device.type == "cpu", step_scheduler_with_optimizer=False)
    meters = {name: AverageMeter(name, ":.3f") for name in ("loss", "grad_norm", "lr", "update_s")}
    tracker = MetricsTracker(options.batch_size, dataset.num_frames, max(1, dataset.num_episodes), meters,
                             initial_step=start, accelerator=None)
    grad_clip = float(optim_cfg.grad_clip_norm)
    n_trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    logger.info("training %d of %d parameters for %d steps", n_trainable,
                sum(p.numel() for p in policy.parameters()), options.steps - start)

    def checkpoint(step: int) -> None:
        directory = get_step_checkpoint_dir(options.output, options.steps, step)
        save_model(directory / FINAL_DIR, policy, preprocessor, postprocessor, backbone)
        save_training_state(directory, step, optimizer, scheduler)
        update_last_checkpoint(directory)

    bar = tqdm(total=options.steps, initial=start, desc=describe.get("name", "training"), unit="step",
               disable=not options.progress, dynamic_ncols=True)
    step = start
    t0 = time.perf_counter()
    try:
        while step < options.steps:
            batch = preprocessor(next(data))
            tracker, out = update_policy(tracker, objective, batch, optimizer, grad_clip,
                                         accelerator=accelerator, lr_scheduler=scheduler)
            step += 1
            row = {"step": step, "lr": tracker.lr.val, "grad_norm": tracker.grad_norm.val,
                   **{k: float(v) for k, v in out.items() if k in objective.terms}}
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"the loss became {row['loss']} at step {step}; lower --lr")
            log.append(row)
            bar.set_postfix({k: f"{row[k]:.4g}" for k in objective.terms if k in row})
            bar.update(1)
            if on_step is not None:
                on_step(step, row)
            if options.save_freq and step % options.save_freq == 0 and step < options.steps:
                checkpoint(step)
    finally:
        bar.close()
    checkpoint(step)
    final = options.output / FINAL_DIR
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(get_step_checkpoint_dir(options.output, options.steps, step) / FINAL_DIR, final)
    plot = plot_losses(log.rows, objective.terms, options.output / LOSS_PLOT,
                       f"{describe.get('name', 'training')}: {options.output.name}")
    logger.info("%d steps in %.1f s; model in %s", step - start, time.perf_counter() - t0, final)
    return RunResult(options.output, final, step, start, log.rows, log.path, plot)
