"""Decoding options (objective.generation, transferlab-generate, transferlab-predict): each one set reaches
model.generate and only those set do; a setting the chosen decoding would ignore is refused in one line, in the
config and on both command lines. And the scores of generated text (text_scores)."""

import json

import pytest
import torch
from conftest import single_thread
from omegaconf import OmegaConf

from transferlab.errors import TransferlabError
from transferlab.objectives.generation import GenerationConfig, generate
from transferlab.objectives.text_scores import text_scores

one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)

TEXTS = ["a small dog barks", "the red bus stops here", "a cat", "dogs and cats sleep on the mat all day long"]
ALWAYS = {"max_new_tokens": 8, "num_beams": 1, "do_sample": False}


def _gpt2(eos_token_id=None):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50, n_positions=64, eos_token_id=eos_token_id)
    return GPT2LMHeadModel(config).eval()


def _spy(model) -> list:
    """Record the keyword arguments of each model.generate call, then generate as usual."""
    calls, real = [], model.generate

    def spy(**kw):
        calls.append({k: v for k, v in kw.items() if k not in ("input_ids", "attention_mask", "streamer")})
        return real(**kw)

    model.generate = spy
    return calls


@pytest.mark.parametrize(
    "set_, passed",
    [
        ({}, {}),
        ({"do_sample": True, "top_k": 5}, {"do_sample": True, "top_k": 5}),
        ({"do_sample": True, "temperature": 0.7, "top_p": 0.9}, {"do_sample": True, "temperature": 0.7, "top_p": 0.9}),
        ({"repetition_penalty": 1.3}, {"repetition_penalty": 1.3}),
        ({"no_repeat_ngram_size": 2}, {"no_repeat_ngram_size": 2}),
        ({"min_new_tokens": 3}, {"min_new_tokens": 3}),
        (
            {"num_beams": 2, "length_penalty": 0.5, "early_stopping": True},
            {"num_beams": 2, "length_penalty": 0.5, "early_stopping": True},
        ),
    ],
)
def test_each_option_set_reaches_model_generate_and_no_default_does(set_, passed):
    model = _gpt2()
    calls = _spy(model)
    ids = torch.tensor([[1, 2, 3]])
    out = generate(
        model, ids, torch.ones_like(ids), OmegaConf.structured(GenerationConfig(max_new_tokens=8, **set_)), 0
    )
    assert calls == [{**ALWAYS, **passed}]
    assert out.shape == (1, 3 + 8)


def _bigrams_twice(tokens: list) -> bool:
    pairs = list(zip(tokens, tokens[1:]))
    return len(set(pairs)) < len(pairs)


def test_no_repeat_ngram_size_and_min_new_tokens_change_what_a_tiny_model_writes():
    model, ids = _gpt2(), torch.tensor([[1, 2, 3]])

    def new_tokens(**options) -> list:
        cfg = OmegaConf.structured(GenerationConfig(max_new_tokens=40, **options))
        return generate(model, ids, torch.ones_like(ids), cfg, 0)[0, 3:].tolist()

    assert _bigrams_twice(new_tokens())  # greedy, a random tiny model loops
    assert not _bigrams_twice(new_tokens(no_repeat_ngram_size=2))
    # its first greedy token made the end token: it stops at once, unless min_new_tokens holds the end back
    model.generation_config.eos_token_id = new_tokens()[0]
    assert len(new_tokens()) == 1
    held = new_tokens(min_new_tokens=5)
    assert len(held) >= 5 and model.generation_config.eos_token_id not in held[:5]


# (options, the config's line, the CLIs' line)
IGNORED = [
    (
        {"top_k": 5},
        "objective.generation.top_k=5 applies only when sampling; add objective.generation.do_sample=true, or drop "
        "objective.generation.top_k",
        "--top-k=5 applies only when sampling; add --do-sample, or drop --top-k",
    ),
    (
        {"temperature": 0.7},
        "objective.generation.temperature=0.7 applies only when sampling; add objective.generation.do_sample=true, "
        "or drop objective.generation.temperature",
        "--temperature=0.7 applies only when sampling; add --do-sample, or drop --temperature",
    ),
    (
        {"top_p": 0.9},
        "objective.generation.top_p=0.9 applies only when sampling; add objective.generation.do_sample=true, or "
        "drop objective.generation.top_p",
        "--top-p=0.9 applies only when sampling; add --do-sample, or drop --top-p",
    ),
    (
        {"length_penalty": 0.5},
        "objective.generation.length_penalty=0.5 applies only to beam search; set objective.generation.num_beams "
        "above 1, or drop objective.generation.length_penalty",
        "--length-penalty=0.5 applies only to beam search; set --num-beams above 1, or drop --length-penalty",
    ),
    (
        {"early_stopping": True},
        "objective.generation.early_stopping=true applies only to beam search; set objective.generation.num_beams "
        "above 1, or drop objective.generation.early_stopping",
        "--early-stopping applies only to beam search; set --num-beams above 1, or drop --early-stopping",
    ),
    (
        {"min_new_tokens": 40},
        "objective.generation.min_new_tokens=40 exceeds objective.generation.max_new_tokens=32; lower "
        "objective.generation.min_new_tokens, or raise objective.generation.max_new_tokens",
        "--min-new-tokens=40 exceeds --max-new-tokens=32; lower --min-new-tokens, or raise --max-new-tokens",
    ),
    (
        {"do_sample": True, "top_k": 0},
        "objective.generation.top_k=0 must be >= 1; sampling draws from the k most likely tokens; unset: the "
        "model's (50)",
        "--top-k=0 must be >= 1; sampling draws from the k most likely tokens; unset: the model's (50)",
    ),
    (
        {"repetition_penalty": 0.0},
        "objective.generation.repetition_penalty=0.0 must be > 0; 1 is none; above 1 makes a token already in the "
        "text rarer",
        "--repetition-penalty=0.0 must be > 0; 1 is none; above 1 makes a token already in the text rarer",
    ),
    (
        {"no_repeat_ngram_size": -1},
        "objective.generation.no_repeat_ngram_size=-1 must be >= 0; 0 is off; n forbids any n-gram to occur twice",
        "--no-repeat-ngram-size=-1 must be >= 0; 0 is off; n forbids any n-gram to occur twice",
    ),
]


def _overrides(options: dict) -> list:
    return [f"objective.generation.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in options.items()]


def _flags(options: dict) -> list:
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return flags


@pytest.mark.parametrize("objective", [["model=tiny_t5", "objective=seq2seq"], ["model=tiny_gpt2", "objective=sft"]])
@pytest.mark.parametrize("options, line, _", IGNORED)
def test_the_config_refuses_a_setting_its_decoding_ignores_when_composed(objective, options, line, _):
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    cfg = compose([*objective, "data=wordnet_definitions", *_overrides(options)])
    with pytest.raises(TransferlabError) as info:
        validate(cfg)
    assert str(info.value) == line


def test_the_config_takes_each_option_where_its_decoding_reads_it():
    from transferlab.cli.front import compose
    from transferlab.config.validate import validate

    sampled = {"do_sample": True, "top_k": 5, "temperature": 0.7, "top_p": 0.9, "min_new_tokens": 2}
    beams = {"num_beams": 2, "length_penalty": 0.5, "early_stopping": True}
    plain = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 3}
    for options in (sampled, beams, plain):
        cfg = compose(["model=tiny_t5", "objective=seq2seq", "data=wordnet_definitions", *_overrides(options)])
        validate(cfg)
        assert {k: cfg.objective.generation[k] for k in options} == options


def _one_line(main, argv, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0].removeprefix("error: ")


@pytest.mark.parametrize("options, _, line", IGNORED)
def test_transferlab_generate_refuses_a_setting_its_decoding_ignores_before_loading(options, _, line, capsys):
    from transferlab.cli.generate import main

    # the model is never looked at: the options are checked first
    assert _one_line(main, ["no-such-export", "--prompt", "a", *_flags(options)], capsys) == line


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny GPT-2 and a tiny T5 saved with their tokenizers (exports from elsewhere: default options), and a
    classifier."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    from transferlab.models.tokenizer import _train_byte_bpe, _train_unigram, _train_wordpiece

    root = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    bpe = _train_byte_bpe(iter([TEXTS * 20]), vocab_size=300, min_frequency=1, lowercase=True)
    unigram = _train_unigram(iter([TEXTS * 20]), vocab_size=150, min_frequency=1, lowercase=True)
    wordpiece = _train_wordpiece(iter([TEXTS * 20]), vocab_size=120, min_frequency=1, lowercase=True)
    small = {"num_layers": 1, "num_heads": 2}
    models = {
        "gpt2": (GPT2LMHeadModel(GPT2Config(vocab_size=len(bpe), n_embd=32, n_layer=1, n_head=2, n_positions=64)), bpe),
        "t5": (
            T5ForConditionalGeneration(
                T5Config(vocab_size=len(unigram), d_model=32, d_kv=16, d_ff=64, decoder_start_token_id=0, **small)
            ),
            unigram,
        ),
        "classifier": (
            BertForSequenceClassification(
                BertConfig(
                    vocab_size=len(wordpiece),
                    hidden_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                    intermediate_size=64,
                )
            ),
            wordpiece,
        ),
    }
    for name, (model, tokenizer) in models.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    (root / "in.jsonl").write_text("".join(json.dumps({"source": t, "text": t}) + "\n" for t in TEXTS[:2]))
    return root


def _class_spy(monkeypatch, cls) -> list:
    calls, real = [], cls.generate

    def spy(self, *args, **kw):
        calls.append({k: v for k, v in kw.items() if k not in ("input_ids", "attention_mask", "streamer")})
        return real(self, *args, **kw)

    monkeypatch.setattr(cls, "generate", spy)
    return calls


SET = ["--do-sample", "--top-k", "4", "--repetition-penalty", "1.2", "--no-repeat-ngram-size", "2"]
SET_BEAMS = ["--num-beams", "2", "--length-penalty", "0.5", "--early-stopping", "--min-new-tokens", "2"]
PASSED = {"do_sample": True, "top_k": 4, "repetition_penalty": 1.2, "no_repeat_ngram_size": 2}
PASSED_BEAMS = {"num_beams": 2, "length_penalty": 0.5, "early_stopping": True, "min_new_tokens": 2}


@pytest.mark.parametrize("flags, passed", [(SET, PASSED), (SET_BEAMS, PASSED_BEAMS)])
def test_transferlab_generate_passes_the_options_given_to_model_generate(exports, monkeypatch, capsys, flags, passed):
    from transformers import GPT2LMHeadModel

    from transferlab.cli.generate import main

    calls = _class_spy(monkeypatch, GPT2LMHeadModel)
    main([str(exports / "gpt2"), "--prompt", "a cat", "--max-new-tokens", "6", "--jsonl", *flags])
    assert calls == [{"max_new_tokens": 6, "num_beams": 1, "do_sample": False, **passed}]
    assert len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize("flags, passed", [(SET, PASSED), (SET_BEAMS, PASSED_BEAMS)])
def test_transferlab_predict_passes_the_options_given_to_model_generate(exports, monkeypatch, capsys, flags, passed):
    from transformers import T5ForConditionalGeneration

    from transferlab.cli.predict import main

    calls = _class_spy(monkeypatch, T5ForConditionalGeneration)
    main([str(exports / "t5"), str(exports / "in.jsonl"), "--max-new-tokens", "6", "--batch-size", "2", *flags])
    assert calls == [{"max_new_tokens": 6, "num_beams": 1, "do_sample": False, **passed}]
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in rows] == TEXTS[:2] and all(isinstance(r["pred_generation"], str) for r in rows)


@pytest.mark.parametrize("options, _, line", IGNORED)
def test_transferlab_predict_refuses_a_setting_its_decoding_ignores_before_loading(
    exports, monkeypatch, capsys, options, _, line
):
    from transferlab.cli import predict

    monkeypatch.setattr(predict, "load", lambda *a: pytest.fail("loaded the model"))
    argv = [exports / "t5", exports / "in.jsonl", *_flags(options)]
    if options.get("top_k") == 0:  # predict's --top-k is checked before the export is read: a label's k, too
        line = "--top-k=0 must be >= 1"
    assert _one_line(predict.main, argv, capsys) == line


def test_transferlab_predict_refuses_decoding_options_for_an_export_that_generates_nothing(exports, capsys):
    from transferlab.cli.predict import main

    assert _one_line(main, [exports / "classifier", exports / "in.jsonl", "--num-beams", "2"], capsys) == (
        "--num-beams: a classification export generates no text, so it has no decoding options; drop --num-beams"
    )
    # there --top-k is the k most likely labels
    main([str(exports / "classifier"), str(exports / "in.jsonl"), "--top-k", "2"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(r["pred_top_k"]) for r in rows] == [2, 2]


def test_rouge_scores_are_torchmetrics_rouge_score_rougelsum_with_sentences_split_at_newlines(monkeypatch):
    from torchmetrics.functional.text import rouge
    from torchmetrics.functional.text.rouge import rouge_score

    predictions = ["The cat sat on the mat.\nIt purred.", "a dog barks loudly", "", "red bus\n\nstops here now"]
    references = ["the cat was on the mat\nit purred loudly", "the dog barks", "nothing", "the red bus stops\nhere"]
    # torchmetrics' own sentence split is nltk's (punkt, downloaded); Google's rouge_score splits at newlines
    monkeypatch.setattr(rouge, "_split_sentence", lambda text: [s for s in text.split("\n") if s.strip()])
    reference = rouge_score(predictions, references, rouge_keys=("rouge1", "rouge2", "rougeL", "rougeLsum"))
    scores = text_scores(predictions, references)
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert scores[key] == pytest.approx(float(reference[f"{key}_fmeasure"]), abs=1e-6), key
    # by hand: the sentences in the other order share a 3-word LCS as one text (P = R = 3/5), but each sentence
    # matches one of the other's whole (rougeLsum's union LCS: 3 + 2 of 5 words)
    swapped = text_scores(["it purred\nthe cat sat"], ["the cat sat\nit purred"])
    assert (swapped["rougeL"], swapped["rougeLsum"]) == (pytest.approx(0.6), pytest.approx(1.0))


def test_distinct_and_repeat_rate_match_hand_computed_values():
    outputs = ["a b a b a", "a b c", "x", "c c c c"]
    scores = text_scores(outputs, ["a b", "a b c", "y", "c"])
    # unigrams: 5 + 3 + 1 + 4 = 13, distinct {a, b, c, x} = 4
    assert scores["distinct_1"] == pytest.approx(4 / 13)
    # bigrams: (a b)(b a)(a b)(b a) + (a b)(b c) + none + (c c)x3 = 9, distinct {ab, ba, bc, cc} = 4
    assert scores["distinct_2"] == pytest.approx(4 / 9)
    # 3-grams repeated: "a b a b a" has (a b a) twice, "c c c c" has (c c c) twice; "a b c" and "x" none
    assert scores["repeat_rate"] == 0.5
    empty = text_scores(["", ""], ["a", "b"])
    assert (empty["distinct_1"], empty["distinct_2"], empty["repeat_rate"]) == (0.0, 0.0, 0.0)


def test_a_text_to_text_run_reports_every_score_for_validation_and_test_with_its_decoding(tmp_path, monkeypatch):
    """A short seq2seq run decoding with no_repeat_ngram_size: every validation and test generation gets it, and
    val/ and test/ carry each score of text_scores, test/'s those of its predictions/test.jsonl."""
    from conftest import train_in_process

    from transferlab.objectives.text_scores import distinct, repeat_rate

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    rows = [{"source": f"{t} {i}", "target": t} for i, t in enumerate(TEXTS * 4)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        "objective=seq2seq",
        "model=tiny_t5",
        "data=files",
        *(f"data.{split}={path}" for split in ("train", "validation", "test")),
        "tokenizer.vocab_size=300",
        "tokenizer.min_frequency=1",
        "trainer.max_steps=2",
        "objective.generation.max_new_tokens=12",
        "objective.generation.no_repeat_ngram_size=2",
    ]
    _, metrics, calls = train_in_process(overrides, tmp_path / "run", lambda a: _spy(a.module.model))
    assert calls and all(c == {**ALWAYS, "max_new_tokens": 12, "no_repeat_ngram_size": 2} for c in calls)
    keys = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match", "distinct_1", "distinct_2")
    for stage in ("val", "test"):
        assert {f"{stage}/{k}" for k in (*keys, "repeat_rate")} <= set(metrics), stage
    written = [json.loads(line) for line in (tmp_path / "run" / "predictions" / "test.jsonl").read_text().splitlines()]
    texts = [r["prediction"] for r in written]
    assert len(texts) == len(rows)
    assert metrics["test/repeat_rate"] == pytest.approx(repeat_rate(texts))
    assert (metrics["test/distinct_1"], metrics["test/distinct_2"]) == pytest.approx(
        (distinct(texts, 1), distinct(texts, 2))
    )
