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
