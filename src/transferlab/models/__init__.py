"""Where a model comes from: architectures and kinds, building from config or a checkpoint, the hub rules, and
tokenizers."""
