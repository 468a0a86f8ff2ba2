"""The model card's command round-trips through a shell."""

import shlex


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
