"""Cross-entropy over a vocabulary projection that never holds the [tokens, vocab] logits at once.

A causal LM's loss projects every position onto the vocabulary: GPT-2-small at batch 16 x 1,024 tokens makes
[16,384, 50,257] logits, 3.3 GB in fp32, plus as much again for their gradient. `linear_cross_entropy` projects
`chunk` rows at a time instead and computes each chunk's gradients (hidden and weight) right away, in the forward
pass, as the fused kernels of Liger-Kernel and llm.c do. Only one chunk's logits exist at any moment; backward just
scales the stored gradients. The result is the mean cross-entropy over the rows whose target is not IGNORE, equal to
`cross_entropy(hidden @ weight.T + bias, targets)` within float rounding (tests/test_lm_loss.py); with `smoothing`,
torch's `label_smoothing` over the real vocabulary (tests/test_optim.py).

Columns from `vocab` on (a vocabulary padded to a multiple of 64 for the GPU's matmul tiles, model.vocab_multiple)
are no tokens: `masked_padding` gives them -inf before the softmax, so the loss equals the unpadded model's.

It runs eagerly and under torch.compile (one Python loop over the chunks, unrolled in the graph); with no gradient
wanted (evaluation) it computes the loss alone, chunk by chunk.
"""

import torch

from transferlab.objectives.base import IGNORE


def masked_padding(logits: torch.Tensor, vocab: int | None) -> torch.Tensor:
    """Logits with the padded vocabulary columns (from `vocab` on) at -inf; unchanged without padding."""
    if vocab is None or vocab >= logits.size(-1):
        return logits
    return logits.masked_fill(torch.arange(logits.size(-1), device=logits.device) >= vocab, float("-inf"))


def _chunk_logits(hidden, weight, bias, vocab):
    logits = hidden @ weight.t()
    if bias is not None:
        logits = logits + bias
    return masked_padding(logits.float(), vocab)


def _exp_in_place(logits, targets, real: int, smoothing: float):
    """Per-row loss and plain cross-entropy (0 where the target is IGNORE), the valid rows, the targets with 0 for
    IGNORE, and each row's sum of exponentials. `logits` becomes exp(logits - row max), in place, so that a chunk
    holds one [rows, vocab] buffer (logsumexp would allocate a second); divided by that sum it is the softmax.
    Smoothing spreads over the `real` (unpadded) columns: loss = lse - (1 - e) z_target - e mean(z_real)."""
    valid = targets != IGNORE
    safe = torch.where(valid, targets, 0)
    picked = logits.gather(1, safe[:, None]).squeeze(1)
    mean = logits[:, :real].mean(dim=-1) if smoothing else None
    top = logits.amax(dim=-1)
    total = logits.sub_(top[:, None]).exp_().sum(dim=-1)
    lse = total.log() + top
    nll = torch.where(valid, lse - picked, 0.0)
    loss = torch.where(valid, lse - (1.0 - smoothing) * picked - smoothing * mean, 0.0) if smoothing else nll
    return loss, nll, valid, safe, total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int, vocab, smoothing: float):
        real = weight.size(0) if vocab is None else min(vocab, weight.size(0))
        count = (targets != IGNORE).sum().clamp(min=1).float()
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_bias = None if bias is None else torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        total_nll = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            grad = _chunk_logits(h, weight, bias, vocab)
            losses, nll, valid, safe, sums = _exp_in_place(grad, t, real, smoothing)
            total, total_nll = total + losses.sum(), total_nll + nll.sum()
            # d(mean loss)/d(logits) = (softmax - (1 - e) onehot(target) - e / real) / count, on valid rows
            grad.div_(sums[:, None]).scatter_add_(1, safe[:, None], torch.full_like(losses, smoothing - 1.0)[:, None])
            if smoothing:
                grad[:, :real].sub_(smoothing / real)
            grad.mul_((valid.float() / count)[:, None])
            if not torch.is_autocast_enabled(h.device.type):  # autocast casts the matmuls' inputs itself
                grad = grad.to(h.dtype)
            grad_hidden[start : start + chunk] = grad @ weight
            grad_weight += (grad.t() @ h).float()
            if grad_bias is not None:
                grad_bias += grad.float().sum(0)
            del grad  # before the next chunk's logits: one chunk's buffer at a time
        ctx.save_for_backward(grad_hidden, grad_weight, *(() if grad_bias is None else (grad_bias,)))
        ctx.has_bias, ctx.weight_dtype = bias is not None, weight.dtype
        nll = total_nll / count
        ctx.mark_non_differentiable(nll)
        return total / count, nll

    @staticmethod
    def backward(ctx, grad_output, _grad_nll):
        grad_hidden, grad_weight, *rest = ctx.saved_tensors
        grad_bias = rest[0] * grad_output if ctx.has_bias else None
        return (
            grad_hidden * grad_output.to(grad_hidden.dtype),
            (grad_weight * grad_output).to(ctx.weight_dtype),
            None if grad_bias is None else grad_bias.to(ctx.weight_dtype),
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(hidden, weight, targets, bias=None, chunk: int = 4096, vocab: int | None = None):
    """Mean cross-entropy of `hidden @ weight.T (+ bias)` against `targets` (IGNORE rows skipped), `chunk` rows of
    logits at a time. hidden: [N, d]; weight: [V, d]; targets: [N]."""
    return smoothed_linear_cross_entropy(hidden, weight, targets, bias, chunk, vocab)[0]


def smoothed_linear_cross_entropy(hidden, weight, targets, bias=None, chunk=4096, vocab=None, smoothing: float = 0.0):
    """(loss, plain cross-entropy) as linear_cross_entropy gives the latter, the loss with label smoothing `smoothing`
    over the real vocabulary (the first `vocab` columns); only the loss carries a gradient."""
    if torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk, vocab, smoothing)
    real = weight.size(0) if vocab is None else min(vocab, weight.size(0))
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    total_nll = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.size(0), chunk):
        logits = _chunk_logits(hidden[start : start + chunk], weight, bias, vocab)
        losses, nll = _exp_in_place(logits, targets[start : start + chunk], real, smoothing)[:2]
        total, total_nll = total + losses.sum(), total_nll + nll.sum()
        del logits
    count = (targets != IGNORE).sum().clamp(min=1).float()
    return total / count, total_nll / count
