"""Where a transformers task model keeps its embeddings, blocks, pooler, final norm and head.

One generic rule instead of a per-architecture table, checked against BERT, RoBERTa, DistilBERT, GPT-2 and Llama:
- the blocks are the first non-empty ``nn.ModuleList`` inside ``model.base_model``;
- the embeddings are every child of the base model before the child that holds the blocks (this includes GPT-2's
  embedding dropout ``drop``, so a frozen input side is switched to eval() as a whole);
- after the blocks: a normalization module is the final norm (GPT-2 ``ln_f``, Llama ``norm``), a child named
  ``*pool*`` is the pooler; parameter-less children (Llama's rotary embedding) are ignored;
- the head is every parameter-bearing top-level module of the task model outside ``base_model``.
Anything else is an error rather than a guess: a parameter that lands in no part would silently escape every policy.

Tied weights: BERT-MLM's decoder and GPT-2's lm_head reuse the word-embedding Parameter. A shared tensor belongs to
the first part that holds it, bottom to top, i.e. to the embeddings: freezing the embeddings freezes the tied output
layer too, and the head owns only its untied parameters.

The final norm sits between the last block and the head, like the pooler, and is treated like the pooler by every
policy: it trains with the head (top_k, gradual from step 0) and gets the head's learning rate under llrd.
"""

from dataclasses import dataclass

from torch import nn

from transferlab.errors import TransferlabError


def is_norm(module: nn.Module) -> bool:
    """LayerNorm and the RMSNorm variants (LlamaRMSNorm etc. are not nn.LayerNorm subclasses)."""
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or type(module).__name__.lower().endswith("norm")


@dataclass
class Blocks:
    embeddings: list[nn.Module]
    layers: list[nn.Module]  # transformer blocks, bottom to top
    pooler: nn.Module | None
    final_norm: nn.Module | None
    head: list[nn.Module]  # top-level modules of the task model outside base_model; [] for a bare base model

    def part_modules(self) -> dict[str, list[nn.Module]]:
        """The parts bottom to top: embeddings, layer.0 .. layer.{N-1}, pooler, final_norm, head."""
        parts = {"embeddings": self.embeddings}
        parts.update({f"layer.{i}": [layer] for i, layer in enumerate(self.layers)})
        parts["pooler"] = [self.pooler] if self.pooler is not None else []
        parts["final_norm"] = [self.final_norm] if self.final_norm is not None else []
        parts["head"] = self.head
        return parts

    def part_params(self) -> dict[str, list[nn.Parameter]]:
        """Every unique parameter under exactly one part; a tied tensor under the first (lowest) part holding it."""
        seen: set[int] = set()
        params: dict[str, list[nn.Parameter]] = {}
        for key, modules in self.part_modules().items():
            params[key] = []
            for module in modules:
                for p in module.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        params[key].append(p)
        return params


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def find_blocks(model: nn.Module) -> Blocks:
    """Split a transformers model (task model or bare base model) into embeddings, blocks, pooler, final norm, head."""
    kind = type(model).__name__
    base = getattr(model, "base_model", None)
    if not isinstance(base, nn.Module):
        raise TransferlabError(f"{kind} is not a transformers model (no base_model); freeze policies need one")

    layers_path = next(
        (name for name, m in base.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0 and name), None
    )
    if layers_path is None:
        raise TransferlabError(f"{kind} has no list of transformer blocks in its base model; use freeze=none")
    layers = list(base.get_submodule(layers_path))
    holder = layers_path.split(".")[0]

    children = list(base.named_children())
    holder_index = [name for name, _ in children].index(holder)
    embeddings = [m for _, m in children[:holder_index]]
    pooler = final_norm = None
    for name, child in children[holder_index + 1 :]:
        if not _has_params(child):
            continue
        if is_norm(child) and final_norm is None:
            final_norm = child
        elif "pool" in name and pooler is None:
            pooler = child
        else:
            raise TransferlabError(
                f"{kind}: transferlab can't place {name} ({type(child).__name__}) after the blocks; use freeze=none"
            )
    head = [] if base is model else [m for m in model.children() if m is not base and _has_params(m)]
    blocks = Blocks(embeddings, layers, pooler, final_norm, head)

    # The holder of the blocks (e.g. BertEncoder) may carry nothing but the blocks, and nothing may escape the parts.
    placed = {id(p) for params in blocks.part_params().values() for p in params}
    missing = [name for name, p in model.named_parameters() if id(p) not in placed]
    if missing:
        raise TransferlabError(
            f"{kind}: parameters outside embeddings/blocks/pooler/norm/head ({', '.join(missing[:3])}); "
            "transferlab can't map this layout, use freeze=none"
        )
    return blocks
