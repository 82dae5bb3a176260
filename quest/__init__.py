"""QUEST: quantized spiking neural networks trained for multi-state NVM devices."""

__version__ = "0.1.0"
