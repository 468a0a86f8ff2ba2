"""The fine-tuning learning rate of a run that starts from a checkpoint, scaled by the checkpoint's width.

`${tl_checkpoint_lr:NAME_OR_PATH,REVISION,RANDOM_INIT,LR,WIDTH}` is LR x WIDTH / the checkpoint's hidden width, to
two significant digits: with Adam, the learning rate that suits hidden weights shrinks as 1 / width (Yang et al.
2022, *Tensor Programs V*). The reference point and the rule come from measurement (docs/finetune_defaults.md): a
384-wide checkpoint's best LR at the product's budget was 2e-4 to 5e-4, a 128-wide one's 1e-3 to 3e-3. With
RANDOM_INIT (the checkpoint's architecture, random weights) or no checkpoint named yet, it is LR itself, the scratch
default. The width is read from the checkpoint's config.json at compose time: a local dir (a run's export/ included)
or a hub id (the hub cache, or a download of that one file)."""

import json
from pathlib import Path

from transferlab.errors import TransferlabError

WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "dim")  # BERT family / T5, BART / GPT-2 / DistilBERT


def checkpoint_width(name_or_path: str, revision=None) -> int:
    """The hidden width in the checkpoint's config.json (a missing dir or an uncached id offline: hub.py's lines)."""
    from types import SimpleNamespace

    from transferlab.models.hub import check_model_source, local_dir

    check_model_source(SimpleNamespace(name_or_path=name_or_path, revision=revision))
    local = local_dir(name_or_path)
    try:
        if local is None:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name_or_path, "config.json", revision=revision))
        else:
            path = local / "config.json"
        config = json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001 (any failure to read it gets the same one line)
        raise TransferlabError(
            f"model.name_or_path={name_or_path}: cannot read its config.json to scale the default learning rate "
            f"({type(e).__name__}); check the path or hub id, or set optimizer.lr"
        ) from None
    width = next((config[k] for k in WIDTH_KEYS if isinstance(config.get(k), int)), None)
    if width is None:
        raise TransferlabError(
            f"model.name_or_path={name_or_path}: its config.json names no width ({', '.join(WIDTH_KEYS)}) to scale "
            "the default learning rate by; set optimizer.lr"
        )
    return width


def checkpoint_lr(name_or_path, revision, random_init, lr, width) -> float:
    if random_init or not name_or_path:
        return float(lr)
    return float(f"{float(lr) * int(width) / checkpoint_width(str(name_or_path), revision):.2g}")
