"""The data path, top-down: load -> (label encode) -> tokenize -> pack (LM) or bucket (classification) -> collate."""
