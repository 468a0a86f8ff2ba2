"""The fine-tuning learning rate of a run that starts from a checkpoint, scaled by the checkpoint's width.

`${tl_checkpoint_lr:NAME_OR_PATH,REVISION,RANDOM_INIT,LR,WIDTH}` is LR x WIDTH / the checkpoint's hidden width, to
two significant digits: with Adam, the learning rate that suits hidden weights shrinks as 1 / width (Yang et al.
2022, *Tensor Programs V*). The reference point and the rule come from measurement (docs/finetune_defaults.md): a
384-wide checkpoint's best LR at the product's budget was 2e-4 to 5e-4, a 128-wide one's 1e-3 to 3e-3, and a
768-wide one's (measured after the rule was set) 1e-4 to 2e-4. With
RANDOM_INIT (the checkpoint's architecture, random weights), no checkpoint named yet, or a config.json that names no
width, it is LR itself, the scratch default (the run's tree prints the LR chosen). The width is read at compose time:
a local dir (a run's export/ included) or a hub id (the hub cache, or a download of that one file)."""

import json
from pathlib import Path

WIDTH_KEYS = ("hidden_size", "d_model", "n_embd", "dim")  # BERT family / T5, BART / GPT-2 / DistilBERT


def checkpoint_width(name_or_path: str, revision=None) -> int | None:
    """The hidden width in the checkpoint's config.json; None when it cannot be read here (a missing dir, an id not
    in the HF cache offline, no width key). Those checkpoints keep the reference LR; a missing or unreadable one
    then gets its own one-line refusal from the model-source check (models/hub.py), in the order the checks run."""
    from transferlab.models.hub import offline

    try:
        local = Path(name_or_path).expanduser()
        if local.is_dir():
            path = local / "config.json"
        elif offline():
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name_or_path, "config.json", revision=revision)
            path = Path(cached) if isinstance(cached, str) else None
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name_or_path, "config.json", revision=revision))
        config = json.loads(path.read_text()) if path is not None and path.is_file() else {}
    except Exception:  # noqa: BLE001 (unreadable here: the model-source check says why)
        return None
    return next((config[k] for k in WIDTH_KEYS if isinstance(config.get(k), int) and config[k] > 0), None)


def checkpoint_lr(name_or_path, revision, random_init, lr, width) -> float:
    """LR x WIDTH / the checkpoint's width; LR itself from scratch or when the width cannot be read."""
    own = None if random_init or not name_or_path else checkpoint_width(str(name_or_path), revision)
    return float(lr) if own is None else float(f"{float(lr) * int(width) / own:.2g}")
