"""Extractive QA's token <-> character bookkeeping: answers to token targets in a window, and scored token spans
back to character spans of the context. Pure Python over a fast tokenizer's offsets, so it is tested on its own."""

NO_CONTEXT = -1  # offset of a token that is not part of the context (question, specials, padding)


def context_offsets(offsets: list, sequence_ids: list) -> tuple[list, list]:
    """(starts, ends): each token's character span in the context, NO_CONTEXT for every other token."""
    starts = [o[0] if s == 1 else NO_CONTEXT for o, s in zip(offsets, sequence_ids)]
    ends = [o[1] if s == 1 else NO_CONTEXT for o, s in zip(offsets, sequence_ids)]
    return starts, ends


def answer_tokens(starts: list, ends: list, answer_start: int, answer_end: int) -> tuple[int, int, bool]:
    """(start, end, cut): the tokens holding the answer's characters [answer_start, answer_end) when the window
    holds all of it; else (0, 0), the first token standing for "not in this window", and cut=True when the window
    holds part of it (the answer crosses the window's edge)."""
    inside = [i for i, s in enumerate(starts) if s != NO_CONTEXT]
    first, last = inside[0], inside[-1]
    if starts[first] <= answer_start and ends[last] >= answer_end:
        start = next(i for i in inside if ends[i] > answer_start)
        end = next(i for i in reversed(inside) if starts[i] < answer_end)
        return start, max(start, end), False
    return 0, 0, starts[first] < answer_end and ends[last] > answer_start


def best_spans(start_logits: list, end_logits: list, starts: list, ends: list, n_best: int, max_len: int) -> list:
    """Up to n_best [score, char_start, char_end] in the context, best first: pairs of the n_best highest start and
    end logits with start <= end < start + max_len (tokens), scored by the sum of the two logits (as SQuAD's
    reference post-processing does)."""
    top = lambda logits: sorted(range(len(logits)), key=lambda i: -logits[i])[:n_best]  # noqa: E731
    spans = []
    for s in top(start_logits):
        if starts[s] == NO_CONTEXT:
            continue
        for e in top(end_logits):
            if ends[e] != NO_CONTEXT and s <= e < s + max_len:
                spans.append([start_logits[s] + end_logits[e], starts[s], ends[e]])
    spans.sort(key=lambda span: -span[0])
    return spans[:n_best]
