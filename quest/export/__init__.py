"""From a trained run to a chip: device programming maps (programming_map.py) and NIR graphs
(nir_graph.py); `quest-export` (cli.py) is the command line."""
