"""Spiking building blocks: surrogate gradients, the MINT quantizer, neurons, encoders, layers."""
