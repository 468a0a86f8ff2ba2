"""Test-wide settings: no hub, wandb offline, and transferlab's cache (tokenizers, prepared data, features) in a
fresh dir per session, so a test never reads what an earlier session or a user's runs left."""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFERLAB_CACHE", tempfile.mkdtemp(prefix="transferlab-test-cache-"))
if os.environ.get("PYTEST_XDIST_WORKER"):  # make test runs one worker per core: one thread each, children too
    os.environ["OMP_NUM_THREADS"] = "1"


def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy CPU their spin-waits make a test file 10x slower.
    A module uses it as `one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A run inside the test process: no loggers, checkpoints, progress bar or model summary
QUIET = [
    "logger=none",
    "callbacks.checkpoint.enabled=false",
    "callbacks.progress_bar=false",
    "+trainer.enable_model_summary=false",
]


def train_in_process(overrides: list, run_dir, before_fit=None) -> tuple:
    """Check, compose and assemble a run as transferlab-train would, fit and test it, and export it to
    run_dir/export, all in this process: (the assembled run, its metrics, what before_fit(assembled) returned)."""
    from rich.console import Console

    from transferlab.cli.front import compose, preflight
    from transferlab.run.job import _fit_and_evaluate, assemble
    from transferlab.run.outputs import export

    overrides = [*overrides, *QUIET]
    preflight(overrides)
    cfg = compose(overrides)
    a = assemble(cfg, run_dir, [], True, Console(stderr=True, quiet=True))
    seen = before_fit(a) if before_fit else None
    metrics = _fit_and_evaluate(cfg, a, None)
    export(a.policy.model_for_export(a.module.model)[0], a.tokenizer, run_dir / "export", a.module.objective)
    return a, metrics, seen
