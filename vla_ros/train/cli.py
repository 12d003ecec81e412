"""``vla-ros`` sub-commands of the train layer: ``finetune`` and ``distill``.

    vla-ros finetune --dataset DIR --strategy flow|l1|frozen-vision --steps N --init tiny --output DIR
    vla-ros distill --teacher full --dataset DIR --vlm-layers 4 [--expert-layers 4] [--vision-layers 6]
                    [--image-size 256] --steps N [--output DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FINETUNE_EPILOG = """strategies (the seed study's three SmolVLA fine-tunes):
  flow           flow matching, vision encoder trainable (the baseline)      -> model:=full
  l1             the same model with an L1 instead of a squared error        -> model:=l1
  frozen-vision  flow matching with the vision encoder frozen                -> model:=frozen
The result is a LeRobot checkpoint: run it with
  vla-ros launch --model <full|l1|frozen> --checkpoint <output>"""

DISTILL_EPILOG = """The student keeps K VLM and M expert layers of the teacher, chosen evenly
(round(linspace(0, L-1, K))); M must divide K (M < K: only its first layer is joint self-attention).
Optionally fewer vision layers and smaller images (on CPUs the vision tower is about half the time).
loss = w_gt * flow matching + w_velocity * |v_student - v_teacher|^2 + w_attention * attention KL.
The result loads as model:=distilled (default --output is where that variant looks)."""


def _run_options(args: argparse.Namespace, output: Path):
    from vla_ros.train.loop import RunOptions

    return RunOptions(output=output, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      save_freq=args.save_freq, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                      num_workers=args.workers, progress=not args.quiet)


def _finish(result, variant: str) -> None:
    last = result.losses[-1] if result.losses else {}
    terms = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "lr", "grad_norm"))
    print(f"vla-ros: {result.steps} steps (from {result.start_step}); last {terms}")
    print(f"  model:  {result.model_dir}")
    print(f"  losses: {result.csv}" + (f", plot {result.plot}" if result.plot else ""))
    print(f"  run it: vla-ros launch --model {variant} --checkpoint {result.output}")


def _actionable(func):
    """Errors a person can act on end the command with one line, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        from vla_ros.policy.errors import CheckpointError

        try:
            return func(args)
        except (CheckpointError, FloatingPointError) as e:
            print(f"vla-ros {args.command}: {e}", file=sys.stderr)
            return 2
    return run


@_actionable
def cmd_finetune(args: argparse.Namespace) -> int:
    from vla_ros.train.finetune import STRATEGIES, finetune

    output = Path(args.output or f"outputs/finetune-{args.strategy}")
    result = finetune(args.dataset, args.strategy, _run_options(args, output), init=args.init,
                      device=args.device, robot=args.robot)
    _finish(result, STRATEGIES[args.strategy].variant)
    return 0


@_actionable
def cmd_distill(args: argparse.Namespace) -> int:
    from vla_ros.train.distill import default_output, distill, parameter_counts
    from vla_ros.train.objectives import DistillWeights

    output = Path(args.output) if args.output else default_output()
    weights = DistillWeights(gt=args.w_gt, velocity=args.w_velocity, attention=args.w_attention)
    if min(weights.gt, weights.velocity, weights.attention) < 0 or not (weights.gt or weights.velocity):
        raise ValueError("--w-gt, --w-velocity, --w-attention must be >= 0, and --w-gt or --w-velocity > 0")
    counts = {}
    result, plan = distill(args.teacher, args.dataset, _run_options(args, output), vlm_layers=args.vlm_layers,
                           expert_layers=args.expert_layers, vision_layers=args.vision_layers,
                           image_size=args.image_size, weights=weights, attention_pairs=args.attention_layers,
                           device=args.device, robot=args.robot,
                           student_hook=lambda s: counts.update(parameter_counts(s)))
    t = plan.teacher
    print(f"vla-ros: student VLM layers {plan.vlm_layers} of {t['vlm_layers']}, expert layers "
          f"{plan.expert_layers} of {t['expert_layers']}, vision layers {len(plan.vision_layers)} of "
          f"{t['vision_layers']}, images {plan.image_size[0]}x{plan.image_size[1]}; "
          f"{counts.get('total', 0) / 1e6:.1f}M parameters")
    for note in plan.notes:
        print(f"  note: {note}")
    _finish(result, "distilled")
    return 0


def _common(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--dataset", required=True,
                   help="a LeRobotDataset directory (meta/info.json), or a rosbag2 directory (converted first)")
    p.add_argument("--robot", default=None, help="the robot a rosbag was recorded on (for the converter)")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: SmolVLA's preset, 1e-4)")
    p.add_argument("--save-freq", type=int, default=0,
                   help="save a resumable checkpoint every N steps (default: only at the end)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<n> | mps (default auto)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add this layer's sub-commands to the ``vla-ros`` parser."""
    from vla_ros.train.finetune import STRATEGIES

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("finetune", help="fine-tune SmolVLA on a LeRobotDataset (flow | l1 | frozen-vision)",
                       epilog=FINETUNE_EPILOG, formatter_class=fmt)
    p.add_argument("--strategy", choices=list(STRATEGIES), default="flow", help="default %(default)s")
    p.add_argument("--init", default="lerobot/smolvla_base",
                   help="starting checkpoint: a model variant (tiny, full, ...), a hub id or a directory "
                        "(default %(default)s)")
    p.add_argument("--output", default=None, help="run directory (default outputs/finetune-<strategy>)")
    _common(p, steps=20000)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("distill", help="distill a SmolVLA teacher into a shallower student (Shallow-pi)",
                       epilog=DISTILL_EPILOG, formatter_class=fmt)
    p.add_argument("--teacher", default="full", help="a model variant, hub id or directory (default %(default)s)")
    p.add_argument("--vlm-layers", type=int, required=True, help="K: VLM layers of the student")
    p.add_argument("--expert-layers", type=int, default=None, help="M: action-expert layers (default K)")
    p.add_argument("--vision-layers", type=int, default=None, help="V: vision-encoder layers (default the teacher's)")
    p.add_argument("--image-size", type=int, default=None,
                   help="side of the student's input images (default the teacher's, 512 for SmolVLA)")
    p.add_argument("--w-gt", type=float, default=1.0, help="weight of ground-truth flow matching (default 1)")
    p.add_argument("--w-velocity", type=float, default=1.0, help="weight of matching the teacher's velocity (default 1)")
    p.add_argument("--w-attention", type=float, default=0.1,
                   help="weight of attention transfer on the action tokens (default 0.1; 0 turns it off)")
    p.add_argument("--attention-layers", type=int, default=2,
                   help="middle layers used for attention transfer (default 2)")
    p.add_argument("--output", default=None,
                   help="run directory (default: where model:=distilled looks, <cache>/models/distilled)")
    _common(p, steps=20000)
    p.set_defaults(func=cmd_distill)


def main(argv: list[str] | None = None) -> int:
    """``python -m vla_ros.train.cli finetune|distill ...`` (the same as ``vla-ros``)."""
    from vla_ros.cli import main as vla_ros_main

    return vla_ros_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
