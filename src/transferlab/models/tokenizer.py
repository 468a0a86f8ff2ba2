"""Tokenizers: the model's own (tokenizer=pretrained) or one trained on the data (tokenizer=train).

A trained tokenizer is saved in <run>/tokenizer and in the export. A run dir that already holds one (a resumed
run, or a DDP worker started after rank 0 trained it) reuses it, so every process sees the same vocabulary.
A trained tokenizer is also cached by what defines it (the train split's fingerprint and the settings): training
is not deterministic in `tokenizers`, so without the cache every run would get new ids, and re-tokenize its data.
"""

from pathlib import Path

from transferlab.cache import building, cache_key, entry_path, lookup
from transferlab.errors import TransferlabError


def _train_wordpiece(texts, vocab_size: int, min_frequency: int, lowercase: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special)
    )
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    # Segment ids (0 for a pair's first text, 1 for its second) go to the model as BERT's tokenizer sends them.
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _train_byte_bpe(texts, vocab_size: int, min_frequency: int, lowercase: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    eos, pad = "<|endoftext|>", "<|pad|>"
    tk = Tokenizer(models.BPE())
    if lowercase:
        tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[eos, pad],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(texts, trainer)
    # Each text ends with <|endoftext|>, which separates documents once packed for CLM (and a pair's two texts).
    tk.post_processor = _ending_with(tk, eos)
    # No segment ids, as GPT-2's own tokenizer: a decoder has no segment embedding (GPT-2 would add token 0's).
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token=eos,
        bos_token=eos,
        unk_token=eos,
        pad_token=pad,
        model_input_names=["input_ids", "attention_mask"],
    )


def _ending_with(tk, eos: str):
    """The post-processor that ends a text with `eos`, and joins a pair as "a eos b eos"."""
    from tokenizers import processors

    return processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, tk.token_to_id(eos))]
    )


SENTINELS = 100  # T5's <extra_id_0> ... <extra_id_99>: span corruption replaces each noised span by the next one


def _train_unigram(texts, vocab_size: int, min_frequency: int, lowercase: bool):
    """SentencePiece-style Unigram (Metaspace words) for T5-style models: <pad> (also the decoder's start token),
    </s> ending every text, <unk>, and the sentinels. min_frequency does not apply to Unigram."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    pad, eos, unk = "<pad>", "</s>", "<unk>"
    sentinels = [f"<extra_id_{i}>" for i in range(SENTINELS)]
    tk = Tokenizer(models.Unigram())
    tk.normalizer = normalizers.Sequence([normalizers.NFKC(), *([normalizers.Lowercase()] if lowercase else [])])
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(
        texts, trainers.UnigramTrainer(vocab_size=vocab_size - SENTINELS, special_tokens=[pad, eos, unk], unk_token=unk)
    )
    tk.add_special_tokens(sentinels)
    tk.post_processor = _ending_with(tk, eos)
    # A pair is "a </s> b </s>", without segment ids (T5's own tokenizer gives none: T5 has no segment embedding)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token=pad,
        eos_token=eos,
        unk_token=unk,
        extra_special_tokens=sentinels,
        model_input_names=["input_ids", "attention_mask"],
    )


FAMILIES = {"wordpiece": _train_wordpiece, "byte_bpe": _train_byte_bpe, "unigram": _train_unigram}


def _trained(cfg, train_split, objective):
    """Train (or load from the cache) the tokenizer that tokenizer=train defines for this train split."""
    from transformers import AutoTokenizer

    from transferlab.models.architectures import config_fields, kind_of

    tok_cfg = cfg.tokenizer
    family = objective.tokenizer_family(kind_of(config_fields(cfg.model)))
    spec = {
        "data": train_split._fingerprint,
        "samples": tok_cfg.train_samples,
        "family": family,
        "vocab_size": tok_cfg.vocab_size,
        "min_frequency": tok_cfg.min_frequency,
        "lowercase": tok_cfg.lowercase,
        "v": 4,  # 4: byte_bpe and unigram give no segment ids
    }
    key = cache_key(spec)
    cached = lookup("tokenizers", key)
    if cached is not None:  # found by name: the texts are not read
        return AutoTokenizer.from_pretrained(cached)
    from datasets import IterableDataset

    if isinstance(
        train_split, IterableDataset
    ):  # a stream: its first train_samples texts (validate requires the number)
        from transferlab.data.streaming import sample

        train_split = sample(train_split, tok_cfg.train_samples)
    elif tok_cfg.train_samples and tok_cfg.train_samples < len(train_split):
        # a bounded, seeded sample: a vocabulary needs far less text than a large corpus holds
        train_split = train_split.shuffle(seed=0).select(range(tok_cfg.train_samples))
    tokenizer = FAMILIES[family](
        objective.texts(train_split), tok_cfg.vocab_size, tok_cfg.min_frequency, tok_cfg.lowercase
    )
    with building("tokenizers", key) as tmp:  # whole or not at all; a concurrent run that cached it first wins
        tokenizer.save_pretrained(tmp)
    # Loaded back, so this run's tokenizer is byte-for-byte what later runs load (and tokenization caches match).
    return AutoTokenizer.from_pretrained(entry_path("tokenizers", key))


def build_tokenizer(cfg, train_split, run_dir: Path, is_rank_zero: bool, objective):
    """The run's tokenizer. tokenizer=train builds the family the objective (a class) picks for this kind of model,
    from the texts it reads."""
    from transformers import AutoTokenizer

    saved = run_dir / "tokenizer"
    tok_cfg = cfg.tokenizer
    if saved.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(saved)
    elif tok_cfg.source == "pretrained":
        from transferlab.models.hub import check_pretrained_tokenizer

        path = tok_cfg.name_or_path or cfg.model.name_or_path
        check_pretrained_tokenizer(cfg)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                path, trust_remote_code=cfg.model.trust_remote_code, revision=cfg.model.revision
            )
        except (OSError, ValueError) as e:
            raise TransferlabError(
                f"could not load a tokenizer from {path} ({str(e).splitlines()[0]}); "
                "use tokenizer=train or set tokenizer.name_or_path"
            ) from None
    else:
        tokenizer = _trained(cfg, train_split, objective)
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers ship without one; padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    problem = objective.tokenizer_problem(tokenizer, train_split) if train_split is not None else None
    if problem:  # before the run dir keeps it: a resumed run would reuse it
        named, fix = _named_with_fix(cfg, saved)
        raise TransferlabError(f"objective={objective.name}: {named} {problem}; {fix}")
    if tok_cfg.source == "train" and not saved.is_dir() and is_rank_zero:
        tokenizer.save_pretrained(saved)
    return tokenizer


def _named_with_fix(cfg, saved: Path) -> tuple[str, str]:
    """The tokenizer an objective refused, and what to use instead."""
    keeps = "a tokenizer that keeps the text"
    if saved.is_dir():
        return f"the run's tokenizer ({saved})", f"start a new run with {keeps} (tokenizer.lowercase=false)"
    if cfg.tokenizer.source == "pretrained":
        return (
            f"the tokenizer of {cfg.tokenizer.name_or_path or cfg.model.name_or_path}",
            f"use tokenizer.name_or_path=DIR with {keeps}, or tokenizer=train on a model from scratch",
        )
    if cfg.tokenizer.lowercase:
        return "the trained tokenizer (tokenizer.lowercase=true)", "use tokenizer.lowercase=false"
    return "the trained tokenizer", f"use tokenizer=pretrained tokenizer.name_or_path=DIR with {keeps}"
