"""Analysis package for the report on how language-model weights evolve during training."""

__version__ = "0.1.0"
