"""The optimizer over a freeze policy's param groups, and the LR schedule as a multiplier per optimizer step.

Every optimizer takes the groups as the policy gives them: each group's own lr (the base lr times the policy's
multiplier, 0 for a part that must not move) and weight_decay (0 for biases and norms). A group whose lr is 0 is
left bit-identical by all three (the update and the decay are both scaled by lr).
"""

import math


def build_optimizer(groups: list[dict], cfg, fused: bool | None = None):
    """optimizer.name over `groups`; `fused` (one kernel for all parameters) applies to AdamW only."""
    import torch

    name = cfg.get("name", "adamw")  # a run's config saved before optimizer.name existed: AdamW, as it ran
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # The configured lr as is (relative_step=False, no warmup_init): the schedule drives it, as for the others.
        return Adafactor(
            groups,
            lr=cfg.lr,
            scale_parameter=cfg.scale_parameter,
            relative_step=False,
            warmup_init=False,
            clip_threshold=cfg.clip_threshold,
            decay_rate=cfg.decay_rate,
            beta1=cfg.beta1,
        )
    raise ValueError(f"unknown optimizer {name}")  # the schema's choice refuses it first


def schedule(name: str, warmup: int, total: int, num_cycles: int = 1):
    """LR multiplier as a function of the optimizer step: linear warm-up, then linear/cosine decay, constant, the
    inverse square root of the step (transformers' get_inverse_sqrt_schedule, timescale = warmup) or cosine with
    `num_cycles` hard restarts (get_cosine_with_hard_restarts_schedule_with_warmup)."""
    timescale = warmup or 10_000  # inverse_sqrt without warm-up: transformers' default timescale

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "constant":
            return 1.0
        if name == "inverse_sqrt":
            return 1.0 / math.sqrt((step + timescale - warmup) / timescale)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "linear":
            return max(0.0, 1.0 - progress)
        if name == "cosine_with_restarts":
            return 0.0 if progress >= 1.0 else 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0)))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def group_schedules(groups: list[dict], base) -> list:
    """One LR multiplier per param group: the schedule, held at 0 before the group's start_step (gradual unfreezing)."""
    return [(lambda step, start=g.get("start_step", 0): base(step) if step >= start else 0.0) for g in groups]


def build_scheduler(optimizer, groups: list[dict], cfg, total: int):
    import torch

    base = schedule(cfg.name, int(cfg.warmup_ratio * total), total, cfg.get("num_cycles", 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, group_schedules(groups, base))
