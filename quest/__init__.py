"""QUEST: quantized spiking neural networks trained for multi-state NVM devices."""

from quest.configs import register_resolvers as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()  # any code that composes QUEST's configs has imported quest
