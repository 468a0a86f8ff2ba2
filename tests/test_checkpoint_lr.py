"""The default learning rate of a run that starts from a checkpoint: chosen by init (regimen_init/), scaled by width."""

import json

import pytest

from transferlab.cli.front import compose


def checkpoint(tmp_path, name: str, **config) -> str:
    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize(
    "config, lr",
    [
        ({"model_type": "bert", "hidden_size": 384}, 5e-4),  # the reference point (MiniLM-L6's width)
        ({"model_type": "modernbert", "hidden_size": 128}, 1.5e-3),
        ({"model_type": "bert", "hidden_size": 768}, 2.5e-4),
        ({"model_type": "distilbert", "dim": 768}, 2.5e-4),
        ({"model_type": "t5", "d_model": 256}, 7.5e-4),
        ({"model_type": "bert", "hidden_size": 1024}, 1.9e-4),  # two significant digits (1.875e-4)
    ],
)
def test_fine_tuning_a_checkpoint_scales_the_lr_by_its_width(tmp_path, config, lr):
    cfg = compose(["model=pretrained", f"model.name_or_path={checkpoint(tmp_path, 'ckpt', **config)}"])
    assert cfg.hydra.runtime.choices["regimen_init"] == "classification_none_pretrained"
    assert cfg.optimizer.lr == pytest.approx(lr)


def test_scratch_runs_keep_their_default(tmp_path):
    path = checkpoint(tmp_path, "ckpt", hidden_size=128)
    assert compose([]).optimizer.lr == 5e-4  # built from config
    assert compose(["model=pretrained", f"model.name_or_path={path}", "model.random_init=true"]).optimizer.lr == 5e-4


def test_presets_probes_other_objectives_and_the_command_line_keep_their_lr(tmp_path):
    path = checkpoint(tmp_path, "ckpt", hidden_size=128)
    base = ["model=pretrained", f"model.name_or_path={path}"]
    assert compose([*base, "optimizer.lr=2e-5"]).optimizer.lr == 2e-5
    assert compose([*base, "freeze=backbone"]).optimizer.lr == 1e-2  # the probe's regimen (regimen/)
    assert compose([*base, "freeze=llrd"]).optimizer.lr == 5e-4  # not measured: the general default
    assert compose([*base, "objective=regression", "data=wordnet_depth"]).optimizer.lr == 5e-4
    assert compose(["experiment=finetune", f"model.name_or_path={path}"]).optimizer.lr == 5e-4  # the preset's own
    assert compose(["experiment=study", f"pretrained_source={path}"]).optimizer.lr == 1e-3


def test_a_checkpoint_whose_width_cannot_be_read_keeps_the_reference_lr(tmp_path):
    """No width key, or an unreadable config.json: 5e-4, as from scratch; nothing raised at compose time, so the
    checks that run in order (model source, tokenizer, combinations) give their own lines."""
    odd = checkpoint(tmp_path, "odd", model_type="x")
    assert compose(["model=pretrained", f"model.name_or_path={odd}"]).optimizer.lr == 5e-4
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert compose(["model=pretrained", f"model.name_or_path={broken}"]).optimizer.lr == 5e-4
