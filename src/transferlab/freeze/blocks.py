"""Where a transformers model keeps its embeddings, its stacks of blocks, pooler, final norms and head.

One generic rule instead of a per-architecture table, checked against BERT, RoBERTa, DistilBERT, GPT-2, Llama, T5
and BART:
- a stack is a non-empty ``nn.ModuleList`` of blocks inside ``model.base_model`` (not nested in another stack):
  one for an encoder or a decoder, two for an encoder-decoder (the encoder's, then the decoder's);
- the embeddings are every child of the base model before the first stack (this includes GPT-2's embedding dropout
  ``drop``, so a frozen input side is switched to eval() as a whole), plus the embedding modules a stack's holder
  keeps beside its blocks (T5's and BART's ``embed_tokens``, BART's ``embed_positions``/``layernorm_embedding``);
- a normalization module after a stack's blocks is that stack's final norm (GPT-2 ``ln_f``, Llama ``norm``, T5
  ``final_layer_norm``); a child named ``*pool*`` is the pooler; parameter-less children (Llama's rotary embedding)
  are ignored;
- the head is every parameter-bearing top-level module of the task model outside ``base_model`` (or, where the task
  model is its own base model, as T5's is, the modules after the stacks).
Anything else is an error rather than a guess: a parameter that lands in no part would silently escape every policy.

Part names: ``embeddings``, ``layer.<i>`` (``<stack>.layer.<i>`` when there are two stacks), ``pooler``,
``final_norm`` (``<stack>.final_norm``) and ``head``.

Tied weights: BERT-MLM's decoder, GPT-2's lm_head and T5's lm_head reuse the word-embedding Parameter. A shared
tensor belongs to the first part that holds it, bottom to top, i.e. to the embeddings: freezing the embeddings
freezes the tied output layer too, and the head owns only its untied parameters.

A final norm sits between its stack's last block and what reads it, like the pooler, and is treated like the pooler
by every policy: it trains with the head (top_k, gradual from step 0) and gets the head's learning rate under llrd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import TransferlabError


def is_norm(module) -> bool:
    """LayerNorm and the RMSNorm variants (LlamaRMSNorm, T5LayerNorm etc. are not nn.LayerNorm subclasses)."""
    from torch import nn

    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or type(module).__name__.lower().endswith("norm")


def _is_embedding(name: str, module) -> bool:
    from torch import nn

    return isinstance(module, nn.Embedding) or "embed" in name


@dataclass
class Stack:
    name: str  # the holder's name (encoder, decoder, h, ...)
    layers: list  # blocks, bottom to top
    final_norm: object = None


@dataclass
class Blocks:
    embeddings: list
    stacks: list  # of Stack, in data-flow order (an encoder's before a decoder's)
    pooler: object = None
    head: list = field(default_factory=list)  # top-level modules outside the base model; [] for a bare base model

    @property
    def layers(self) -> list:
        """Every block of every stack, bottom to top, stack after stack."""
        return [layer for stack in self.stacks for layer in stack.layers]

    @property
    def final_norm(self):
        return self.stacks[-1].final_norm

    def prefix(self, stack: Stack) -> str:
        return f"{stack.name}." if len(self.stacks) > 1 else ""

    def layer_keys(self) -> list[tuple[str, int, int]]:
        """(part key, index from the bottom, depth of its stack) for every block."""
        return [(f"{self.prefix(s)}layer.{i}", i, len(s.layers)) for s in self.stacks for i in range(len(s.layers))]

    def norm_keys(self) -> list[str]:
        return [f"{self.prefix(s)}final_norm" for s in self.stacks]

    def part_modules(self) -> dict[str, list]:
        """The parts bottom to top: embeddings, blocks (stack by stack), pooler, final norms, head."""
        parts = {"embeddings": self.embeddings}
        for s in self.stacks:
            parts.update({f"{self.prefix(s)}layer.{i}": [layer] for i, layer in enumerate(s.layers)})
        parts["pooler"] = [self.pooler] if self.pooler is not None else []
        for s, key in zip(self.stacks, self.norm_keys()):
            parts[key] = [s.final_norm] if s.final_norm is not None else []
        parts["head"] = self.head
        return parts

    def part_params(self) -> dict[str, list]:
        """Every unique parameter under exactly one part; a tied tensor under the first (lowest) part holding it."""
        seen: set[int] = set()
        params: dict[str, list] = {}
        for key, modules in self.part_modules().items():
            params[key] = []
            for module in modules:
                for p in module.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params[key].append(p)
        return params


def _has_params(module) -> bool:
    return next(module.parameters(), None) is not None


def _stack_paths(base) -> list[str]:
    from torch import nn

    paths = []
    for name, module in base.named_modules():
        inside = any(name.startswith(p + ".") for p in paths)
        if name and not inside and isinstance(module, nn.ModuleList) and len(module) > 0 and _has_params(module):
            paths.append(name)
    return paths


def find_blocks(model) -> Blocks:
    """Split a transformers model (task model or bare base model) into embeddings, stacks, pooler, norms and head."""
    from torch import nn

    kind = type(model).__name__
    base = getattr(model, "base_model", None)
    if not isinstance(base, nn.Module):
        raise TransferlabError(f"{kind} is not a transformers model (no base_model); freeze policies need one")
    paths = _stack_paths(base)
    if not paths:
        raise TransferlabError(f"{kind} has no list of transformer blocks in its base model; use freeze=none")

    children = list(base.named_children())
    names = [name for name, _ in children]
    holders = [p.split(".")[0] for p in paths]
    first = min(names.index(h) for h in holders)
    embeddings = [m for _, m in children[:first]]
    stacks = []
    for path, holder in zip(paths, holders):
        stack = Stack(holder, list(base.get_submodule(path)))
        if path != holder:  # the list sits inside a holder (BertEncoder, T5Stack): place what it keeps beside it
            inner = path.split(".", 1)[1]
            for name, child in base.get_submodule(holder).named_children():
                if name == inner or not _has_params(child):
                    continue
                if _is_embedding(name, child):
                    embeddings.append(child)
                elif is_norm(child) and stack.final_norm is None:
                    stack.final_norm = child
                # anything else stays unplaced: the check below names its parameters
        stacks.append(stack)

    pooler, head = None, []
    own_head = base is model  # e.g. T5ForConditionalGeneration: its lm_head is a child of the base model
    for name, child in children[first:]:
        if name in holders or not _has_params(child):
            continue
        if is_norm(child) and stacks[-1].final_norm is None:
            stacks[-1].final_norm = child
        elif "pool" in name and pooler is None:
            pooler = child
        elif own_head:
            head.append(child)
        else:
            raise TransferlabError(
                f"{kind}: transferlab can't place {name} ({type(child).__name__}) after the blocks; use freeze=none"
            )
    if not own_head:
        head = [m for name, m in model.named_children() if m is not base and _has_params(m)]
    blocks = Blocks(embeddings, stacks, pooler, head)

    # The holder of the blocks (e.g. BertEncoder) may carry nothing but the blocks, and nothing may escape the parts.
    placed = {id(p) for params in blocks.part_params().values() for p in params}
    missing = [name for name, p in model.named_parameters() if id(p) not in placed]
    if missing:
        raise TransferlabError(
            f"{kind}: parameters outside embeddings/blocks/pooler/norm/head ({', '.join(missing[:3])}); "
            "transferlab can't map this layout, use freeze=none"
        )
    return blocks
