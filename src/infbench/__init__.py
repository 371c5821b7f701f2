"""infbench: benchmark AI inference servers under realistic traffic."""

__version__ = "0.1.0"
