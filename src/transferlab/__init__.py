"""transferlab: config-driven pre-training, fine-tuning and frozen transfer of transformer language models."""

__version__ = "0.1.0"
