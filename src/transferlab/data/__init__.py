"""The data path, top-down: load the fields an objective reads -> the objective prepares each split (tokenize, pack,
align) -> batches (bucketed by length where rows differ) -> the objective's collator."""
