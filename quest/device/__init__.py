"""Multi-state NVM devices as data: cards, RSTD costs, R-S mapping patterns, realizability, and the
device mapping of a run (its energy formulas live in quest.energy)."""
from quest.device.card import (
    DeviceCard,
    DeviceCardError,
    available_cards,
    load_card,
    read_energy_from_resistance_fJ,
    write_energy_from_pulse_fJ,
)
from quest.device.mapping import DeviceMapping
from quest.device.patterns import (
    ENUMERATION_LIMIT,
    Pattern,
    best_pattern,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    pattern_number,
    read_vector_fJ,
    read_vectors_fJ,
    search_best_pattern,
    weight_levels,
    write_matrices_fJ,
    write_matrix_fJ,
)
from quest.device.realizability import Realizability, check_realizable, max_bits, neuron_hostable, synapse_fits
from quest.device.rstd import cheapest_path, transition_cost_matrix_fJ

__all__ = [
    "DeviceCard", "DeviceCardError", "available_cards", "load_card",
    "read_energy_from_resistance_fJ", "write_energy_from_pulse_fJ",
    "transition_cost_matrix_fJ", "cheapest_path",
    "Pattern", "ENUMERATION_LIMIT", "weight_levels", "count_patterns", "enumerate_patterns",
    "get_pattern", "pattern_number", "write_matrix_fJ", "read_vector_fJ", "write_matrices_fJ",
    "read_vectors_fJ", "best_pattern", "search_best_pattern",
    "Realizability", "max_bits", "check_realizable", "synapse_fits", "neuron_hostable",
    "DeviceMapping",
]
