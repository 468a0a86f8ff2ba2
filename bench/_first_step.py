"""Launch probe for bench/startup.py: runs transferlab-train's main() with the given overrides and exits right after
the first optimizer step, writing phase times (seconds since the parent spawned it) to $BENCH_PROBE_OUT.

It only wraps product functions with timers and watches sys.modules from a thread (when torch, lightning, ...
first appear); nothing else changes, so the path is the real `transferlab-train`.
"""

import json
import os
import sys
import threading
import time

T0 = float(os.environ["BENCH_T0"])  # the parent's time.time() just before it spawned this process
marks, spans, first_import = {"interpreter_up": round(time.time() - T0, 3)}, {}, {}
HEAVY = ("torch", "lightning", "transformers", "datasets", "wandb", "torchmetrics")


def now():
    return round(time.time() - T0, 3)


def watch_imports():
    while len(first_import) < len(HEAVY):
        for name in HEAVY:
            if name not in first_import and name in sys.modules:
                first_import[name] = now()
        time.sleep(0.005)


threading.Thread(target=watch_imports, daemon=True).start()


def timed(module, name, key, start_mark=None):
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.time()
        if start_mark:
            marks[start_mark] = now()
        try:
            return original(*args, **kwargs)
        finally:
            spans[key] = round(spans.get(key, 0.0) + time.time() - start, 3)

    setattr(module, name, wrapper)


def finish():
    marks["first_step"] = now()
    with open(os.environ["BENCH_PROBE_OUT"], "w") as f:
        json.dump({"marks": marks, "spans": spans, "first_import": first_import}, f)
    os._exit(0)  # the first step is all we time: skip the rest of the run


import transferlab.cli.front as cli  # noqa: E402  (light: hydra/omegaconf only)
import transferlab.run.job as job  # noqa: E402

timed(cli, "preflight", "preflight (compose + validate)")
timed(job, "run_job", "run_job", start_mark="run_job_start")
timed(job, "train", "train", start_mark="train_start")
original_assemble = job.assemble


def assemble(*args, **kwargs):
    import transferlab.data.module as datamodule
    import transferlab.models.build as models
    import transferlab.models.tokenizer as tokenizer

    timed(tokenizer, "build_tokenizer", "build_tokenizer")
    timed(datamodule, "prepare_splits", "prepare_splits (tokenize + pack/bucket)")
    timed(models, "build_model", "build_model")
    result = original_assemble(*args, **kwargs)
    fit = result.trainer.fit

    def timed_fit(*a, **k):
        marks["fit_start"] = now()
        return fit(*a, **k)

    result.trainer.fit = timed_fit
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(lambda *a: finish())
    return result


job.assemble = assemble
timed(job, "assemble", "assemble", start_mark="assemble_start")
for module_name, function, key in (
    ("transferlab.run.preflight", "check_inputs", "check_inputs (load splits, labels)"),
    ("transferlab.run.loggers", "build_loggers", "build_loggers"),
):
    try:  # only where this version of the product has them; importing them is light
        __import__(module_name)
        timed(sys.modules[module_name], function, key)
    except (ImportError, AttributeError):
        pass

import transferlab.train as train  # noqa: E402

marks["imported_train"] = now()
sys.argv = ["transferlab-train", *sys.argv[1:]]
train.main()
marks["no_step"] = now()
finish()  # reached only if no optimizer step ran
