"""Energy accounting without Lightning: write (Algorithm 1), read (Algorithm 2), the 45 nm CMOS
comparison, and the energy record (energy.json), REFERENCE.md sections 8 and 9."""
from quest.energy.cmos import E_AC_pJ, E_MAC_pJ, CmosEnergy, cmos_energy_pJ, conv_flops, linear_flops
from quest.energy.read import read_energy_fJ
from quest.energy.write import (
    LayerWriteEnergy,
    NonAdjacentShare,
    WriteEnergies,
    layer_write_energy,
    non_adjacent_share,
    transition_probabilities,
    write_energies,
    write_energy_per_update_fJ,
)

__all__ = [
    "E_MAC_pJ", "E_AC_pJ", "CmosEnergy", "cmos_energy_pJ", "conv_flops", "linear_flops",
    "read_energy_fJ",
    "transition_probabilities", "write_energy_per_update_fJ", "LayerWriteEnergy", "layer_write_energy",
    "WriteEnergies", "write_energies", "NonAdjacentShare", "non_adjacent_share",
]
