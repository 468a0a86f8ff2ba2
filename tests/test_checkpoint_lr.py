"""The default learning rate of a run that starts from a checkpoint: chosen by init (regimen_init/), scaled by width."""

import json

import pytest

from transferlab.cli.front import compose, preflight
from transferlab.errors import TransferlabError


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


def test_a_checkpoint_without_a_readable_width_is_one_line(tmp_path):
    """Refused at the config check, before the run dir is claimed or anything loads."""
    odd = checkpoint(tmp_path, "odd", model_type="x")
    with pytest.raises(TransferlabError) as info:  # what transferlab-train checks before any work
        preflight(["model=pretrained", f"model.name_or_path={odd}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert str(info.value) == (
        f"model.name_or_path={tmp_path / 'odd'}: its config.json names no width (hidden_size, d_model, n_embd, dim) "
        "to scale the default learning rate by; set optimizer.lr"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(TransferlabError) as info:
        preflight(["model=pretrained", f"model.name_or_path={broken}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert str(info.value) == (
        f"model.name_or_path={broken}: cannot read its config.json to scale the default learning rate "
        "(JSONDecodeError); check the path or hub id, or set optimizer.lr"
    )
    assert not (tmp_path / "run").exists()


def test_a_missing_dir_gets_the_model_source_line(tmp_path):
    with pytest.raises(TransferlabError) as info:
        preflight(["model=pretrained", f"model.name_or_path={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert str(info.value).startswith(f"model.name_or_path={tmp_path / 'nope'}: no such local directory")
