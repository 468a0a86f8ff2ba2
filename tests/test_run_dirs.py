"""transferlab-eval checks its checkpoint before reading data; the model card's command round-trips through a shell."""

import shlex

import pytest
import torch
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError


@pytest.mark.parametrize("content, problem", [
    (b"text,label\na cat,animal\n", "not a readable checkpoint, truncated or corrupt? (pop from empty list); "
                                    "give a .ckpt from a run's checkpoints/ (best-*.ckpt or last.ckpt)"),
    (None, "not a Lightning checkpoint (no state_dict); "
           "to score an export on new data use transferlab-predict EXPORT INPUT"),
])
def test_eval_checks_its_checkpoint_before_reading_data(tmp_path, monkeypatch, content, problem):
    """A file named .ckpt that is none, in a run dir with a good config: one line, before the data is prepared."""
    from transferlab import job
    from transferlab.cli import compose
    from transferlab.evaluate import evaluate

    ckpt = tmp_path / "run" / "checkpoints" / "x.ckpt"
    ckpt.parent.mkdir(parents=True)
    if content is None:
        torch.save({"weights": torch.zeros(2)}, ckpt)
    else:
        ckpt.write_bytes(content)
    (tmp_path / "run" / ".hydra").mkdir()
    cfg = compose(["debug=fast"])
    saved = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(saved, tmp_path / "run" / ".hydra" / "config.yaml")
    never = lambda *a, **k: pytest.fail("data was prepared before the checkpoint was checked")  # noqa: E731
    monkeypatch.setattr(job, "assemble", never)
    with pytest.raises(TransferlabError) as e:
        evaluate([f"ckpt_path={ckpt}"])
    assert str(e.value) == f"ckpt_path={ckpt}: {problem}"


def test_the_model_card_command_round_trips_through_a_shell():
    from transferlab.card import model_card
    from transferlab.cli import compose

    overrides = ["data.train=/data/my file.csv", "data.text_column=it's", 'task_name="a b"', "seed=1",
                 "+trainer.x=$HOME;rm"]
    cfg = compose(["debug=fast"])
    card = model_card(cfg, {"test/acc": 0.5}, {"trainable": 1, "total": 2}, overrides, "AutoModel", None)
    lines = card.splitlines()
    command = lines[lines.index("```bash") + 1]
    assert shlex.split(command) == ["transferlab-train", *overrides]
