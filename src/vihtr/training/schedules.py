"""Learning-rate schedules, stepped every optimizer step: one-cycle, or warm-up then linear/cosine decay."""

from __future__ import annotations

import math

import torch


class OneCycleLR(torch.optim.lr_scheduler.OneCycleLR):
    """OneCycleLR whose length comes from the run, not from a checkpoint: a run resumed with more steps
    than it started with continues on its own, longer cycle instead of failing past the old end."""

    def load_state_dict(self, state_dict: dict) -> None:
        own_length = {k: self.__dict__[k] for k in ("total_steps", "_schedule_phases")}
        super().load_state_dict(state_dict)
        self.__dict__.update(own_length)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    total_steps: int,
    warmup_steps: int | float = 0.05,
    final_lr_ratio: float = 0.01,
    start_step: int = 0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """`warmup_steps` below 1 is a fraction of `total_steps`. `start_step`: where in the schedule this run
    begins (a long schedule continued from a release on a machine that lost the run's state): the run's
    step 0 gets the learning rate of step `start_step`, with no new warm-up."""
    if start_step and name == "onecycle":
        raise ValueError("start_step needs a cosine, linear or constant schedule")
    total_steps = max(int(total_steps), 1)
    warmup = int(warmup_steps * total_steps) if warmup_steps < 1 else int(warmup_steps)
    warmup = min(warmup, total_steps - 1)
    if name == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        # OneCycleLR divides by the length of each phase (pct_start * cycle - 1 steps for the rise): a cycle
        # of at least 3 steps with a rise of at least 2 keeps both lengths above 0, even for a 1-step run
        cycle = max(total_steps + 1, 3)
        pct_start = min(max(warmup, 2) / cycle, 0.5)
        return OneCycleLR(optimizer, max_lr=max_lrs, total_steps=cycle, pct_start=pct_start)
    if name not in ("cosine", "linear", "constant"):
        raise ValueError(f"unknown schedule {name!r}: use onecycle, cosine, linear or constant")

    def factor(step: int) -> float:
        step += start_step
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "constant":
            return 1.0
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        if name == "linear":
            return 1.0 - (1.0 - final_lr_ratio) * progress
        return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
