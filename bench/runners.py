"""The three kinds of runner every comparison uses, each returning StepLog.window(...) for one round.

- transferlab: the product path. The config is composed by transferlab.cli.front.compose, everything is built by
  transferlab.run.assemble.assemble (with loggers, progress bar and checkpoints off), and trainer.fit runs; a callback
  stamps each optimizer step. The product is rebuilt every round, so every round starts from the same weights.
- HF Trainer: transformers.Trainer with the standard collator; a TrainerCallback stamps each step and a wrapper
  around the collator counts the tokens of every batch.
- raw loop: plain PyTorch doing a given step function (forward, loss, backward, clip, AdamW, LR schedule).
"""

import io
from pathlib import Path

from common import WORK, StepLog

LOGGING_OFF = [
    "logger=none",
    "callbacks.progress_bar=false",
    "callbacks.checkpoint.enabled=false",
    "+trainer.enable_model_summary=false",
    "test=false",
    "export=false",
]


def count(batch, flops_fn):
    """(positions, non-pad tokens, FLOPs) of a batch; with flops_fn.counts_targets, the decoder's target (seq2seq
    labels, -100 at pads) counts too."""
    ids, mask, labels = batch["input_ids"], batch.get("attention_mask"), batch.get("labels")
    positions = ids.numel()
    real = int(mask.sum()) if mask is not None else positions
    if mask is None and "position_ids" in batch and "n_tokens" in batch:  # transferlab's packed sft rows: no mask,
        real = int(batch["n_tokens"])  # n_tokens counts their conversations' tokens, not the pad between rows
    if getattr(flops_fn, "counts_targets", False):
        positions, real = positions + labels.numel(), real + int((labels != -100).sum())
    return positions, real, flops_fn(batch)


# ---------------------------------------------------------------- transferlab


def transferlab_config(overrides: list, steps: int):
    from transferlab.cli.front import compose

    return compose([*overrides, *LOGGING_OFF, f"trainer.max_steps={steps}"])


def transferlab_assemble(cfg, run_dir: Path):
    """transferlab.run.assemble.assemble, as train() calls it (rank zero, no loggers); its parameter table goes
    nowhere."""
    from rich.console import Console

    from transferlab.run.assemble import assemble

    return assemble(cfg, run_dir, [], True, Console(file=io.StringIO()))


class TransferlabRunner:
    def __init__(self, overrides: list, run_dir: Path, steps: int, warmup: int, flops_fn, log_fn=None):
        self.cfg = transferlab_config(overrides, steps + warmup)
        self.run_dir, self.warmup, self.flops_fn = run_dir, warmup, flops_fn
        self.log_fn = log_fn or (lambda: StepLog(warmup=warmup))

    def prepare(self):
        """One assembly up front: trains and saves the tokenizer in run_dir, fills the tokenization cache."""
        return transferlab_assemble(self.cfg, self.run_dir)

    def __call__(self) -> dict:
        import lightning.pytorch as pl

        log, flops_fn = self.log_fn(), self.flops_fn

        class Stamp(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                log.step_end()
                log.batch(*count(batch, flops_fn))

        a = transferlab_assemble(self.cfg, self.run_dir)
        a.trainer.callbacks.append(Stamp())
        a.trainer.fit(a.module, datamodule=a.datamodule)
        return log.window()


# ---------------------------------------------------------------- HF Trainer


def hf_settings(cfg) -> dict:
    """The peer's hyper-parameters, read from transferlab's composed config: one source of truth for both."""
    assert cfg.scheduler.name == "linear", "the HF peer uses a linear schedule"
    return {
        "batch_size": int(cfg.data.batch_size),
        "lr": float(cfg.optimizer.lr),
        "weight_decay": float(cfg.optimizer.weight_decay),
        "warmup_ratio": float(cfg.scheduler.warmup_ratio),
        "clip": float(cfg.trainer.gradient_clip_val),
    }


def hf_arguments(
    output_dir: Path,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup_ratio: float,
    clip: float,
    use_cpu: bool = True,
    num_workers: int = 0,
    args_cls=None,
    **extra,
):
    """TrainingArguments (or args_cls) as the issue fixes them: no eval, no saving, no reporting; CPU and
    main-process loading unless told otherwise (bench/gpu.py)."""
    from transformers import TrainingArguments

    return (args_cls or TrainingArguments)(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=clip,
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        logging_steps=10**6,
        dataloader_num_workers=num_workers,
        use_cpu=use_cpu,
        disable_tqdm=True,
        seed=42,
        **extra,
    )


class HFTrainerRunner:
    def __init__(
        self,
        model_fn,
        dataset,
        collator,
        steps: int,
        warmup: int,
        flops_fn,
        settings: dict,
        log_fn=None,
        trainer_cls=None,
        args_cls=None,
        trainer_kwargs=None,
        **extra,
    ):
        self.model_fn, self.dataset, self.collator, self.flops_fn = model_fn, dataset, collator, flops_fn
        self.trainer_cls = trainer_cls  # default: transformers.Trainer (Seq2SeqTrainer with Seq2SeqTrainingArguments)
        self.trainer_kwargs = trainer_kwargs or {}  # e.g. TRL's SFTTrainer: processing_class
        # TrainingArguments are built per call: building them sets torch's TF32 mode through the new fp32_precision API,
        # after which Lightning's legacy-API check on a GPU raises; a GPU bench runs the HF Trainer last.
        self.make_args = lambda: hf_arguments(
            WORK / "hf_trainer", steps + warmup, **settings, args_cls=args_cls, **extra
        )
        self.warmup, self.log_fn = warmup, log_fn or (lambda: StepLog(warmup=warmup))

    def __call__(self) -> dict:
        import torch
        from transformers import Trainer, TrainerCallback
        from transformers.trainer_callback import PrinterCallback

        log, flops_fn = self.log_fn(), self.flops_fn

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                log.step_end()

        def counted(collator):
            def collate(features):
                batch = collator(features)
                log.batch(*count(batch, flops_fn))
                return batch

            return collate

        torch.manual_seed(42)
        trainer = (self.trainer_cls or Trainer)(
            model=self.model_fn(),
            args=self.make_args(),
            train_dataset=self.dataset,
            data_collator=counted(self.collator) if self.collator else None,
            callbacks=[Stamp()],
            **self.trainer_kwargs,
        )
        if self.collator is None:  # the trainer's own (TRL's padding-free one refuses a custom collator)
            trainer.data_collator = counted(trainer.data_collator)
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict
        trainer.train()
        return log.window()


# ---------------------------------------------------------------- raw PyTorch


class RawLoopRunner:
    """make() -> (model in train mode, batches iterable, loss_fn(model, batch), optimizer, scheduler); the loop is
    plain PyTorch: forward + loss, backward, clip_grad_norm_, optimizer.step, scheduler.step, zero_grad."""

    def __init__(self, make, steps: int, warmup: int, flops_fn, clip: float):
        self.make, self.steps, self.warmup, self.flops_fn, self.clip = make, steps, warmup, flops_fn, clip

    def __call__(self) -> dict:
        import torch

        log = StepLog(warmup=self.warmup)
        model, batches, loss_fn, optimizer, scheduler = self.make()
        params = [p for p in model.parameters() if p.requires_grad]
        total = self.steps + self.warmup
        for i, batch in enumerate(batches):
            loss = loss_fn(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            log.step_end()
            log.batch(*count(batch, self.flops_fn))
            if i + 1 == total:
                break
        return log.window()


def transferlab_raw(cfg, run_dir: Path):
    """A raw loop doing exactly transferlab's work: its model, objective.step (loss + metrics), collator, sampler,
    AdamW (fused, as TransferModule makes it under fp32), param groups and LR schedule, built by the same assemble;
    only Lightning is left out."""
    import torch

    from transferlab.run.optim import group_schedules, schedule

    def make():
        a = transferlab_assemble(cfg, run_dir)
        model, objective, policy = a.module.model, a.module.objective, a.policy
        model.train()
        policy.set_train_mode(model)
        opt_cfg, sched_cfg = cfg.optimizer, cfg.scheduler
        loader = a.datamodule.train_dataloader()
        groups = policy.param_groups(model, opt_cfg.lr, opt_cfg.weight_decay, len(loader))
        optimizer = torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps, fused=True)
        total = int(cfg.trainer.max_steps)
        base = schedule(sched_cfg.name, int(sched_cfg.warmup_ratio * total), total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, group_schedules(groups, base))
        return model, loader, (lambda m, b: objective.step(m, b, "train")), optimizer, scheduler

    return make


def hf_raw(model_fn, dataset, collator, settings: dict, total_steps: int):
    """A raw loop doing HF Trainer's work: same model, dataset, collator, AdamW (fused, HF's default on torch>=2.8),
    decay/no-decay groups and linear warm-up schedule; only the Trainer is left out."""

    def make():
        import torch
        from torch.utils.data import DataLoader
        from transformers import get_linear_schedule_with_warmup

        from transferlab.freeze.common import no_decay_ids, optimizer_groups

        torch.manual_seed(42)
        model = model_fn()
        model.train()
        lr = settings["lr"]
        groups = optimizer_groups("all", list(model.parameters()), lr, settings["weight_decay"], no_decay_ids(model))
        optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)
        warmup = int(settings["warmup_ratio"] * total_steps + 0.999)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
        loader = DataLoader(
            dataset,
            batch_size=settings["batch_size"],
            shuffle=True,
            collate_fn=collator,
            generator=torch.Generator().manual_seed(42),
        )
        return model, loader, (lambda m, b: m(**b).loss), optimizer, scheduler

    return make


def load_texts(path: Path):
    from datasets import load_dataset

    return load_dataset("json", data_files={"train": str(path)}, split="train")


def group_texts(block: int):
    """run_mlm.py / run_clm.py's packing: concatenate each 1000-text chunk and cut it into blocks
    (remainder dropped)."""

    def fn(examples):
        keys = list(examples.keys())
        flat = {k: [t for row in examples[k] for t in row] for k in keys}
        n = (len(flat[keys[0]]) // block) * block
        return {k: [v[i : i + block] for i in range(0, n, block)] for k, v in flat.items()}

    return fn
