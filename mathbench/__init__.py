"""mathbench: what activation functions cost on a CPU, and what they do to accuracy."""
__version__ = "0.1.0"
