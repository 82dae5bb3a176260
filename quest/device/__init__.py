"""Multi-state NVM devices as data: cards, RSTD costs, R-S mapping patterns, energy accounting."""
from quest.device.card import (
    DeviceCard,
    DeviceCardError,
    available_cards,
    load_card,
    read_energy_from_resistance_fJ,
    write_energy_from_pulse_fJ,
)
from quest.device.energy import (
    E_AC_pJ,
    E_MAC_pJ,
    CmosEnergy,
    LayerWriteEnergy,
    NonAdjacentShare,
    cmos_energy_pJ,
    conv_flops,
    layer_write_energy,
    linear_flops,
    non_adjacent_share,
    read_energy_fJ,
    transition_probabilities,
    write_energy_per_update_fJ,
)
from quest.device.patterns import (
    ENUMERATION_LIMIT,
    Pattern,
    best_pattern,
    count_patterns,
    enumerate_patterns,
    get_pattern,
    pattern_number,
    read_vector_fJ,
    search_best_pattern,
    weight_levels,
    write_matrix_fJ,
)
from quest.device.realizability import Realizability, check_realizable, max_bits
from quest.device.rstd import cheapest_path, transition_cost_matrix_fJ

__all__ = [
    "DeviceCard", "DeviceCardError", "available_cards", "load_card",
    "read_energy_from_resistance_fJ", "write_energy_from_pulse_fJ",
    "transition_cost_matrix_fJ", "cheapest_path",
    "Pattern", "ENUMERATION_LIMIT", "weight_levels", "count_patterns", "enumerate_patterns",
    "get_pattern", "pattern_number", "write_matrix_fJ", "read_vector_fJ", "best_pattern",
    "search_best_pattern",
    "E_MAC_pJ", "E_AC_pJ", "transition_probabilities", "write_energy_per_update_fJ",
    "LayerWriteEnergy", "layer_write_energy", "NonAdjacentShare", "non_adjacent_share",
    "read_energy_fJ", "CmosEnergy", "cmos_energy_pJ", "conv_flops", "linear_flops",
    "Realizability", "max_bits", "check_realizable",
]
