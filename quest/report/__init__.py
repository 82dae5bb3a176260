"""quest-report: a Markdown report with PNG figures for a QUEST run or multirun folder.

    python -m quest.report FOLDER [--per-run auto|all|none]      (or: quest-report FOLDER)

FOLDER is a run folder (results.json in it) or a multirun folder (job folders with results.json
below it, at any depth). Each job's results.json and energy.json are read; nothing is retrained.
Written into FOLDER (an earlier report_figs/ is replaced):

    report.md                         plain Markdown: one row per job (failed and interrupted jobs
                                      with their reason; reason strings in place of the energy of
                                      jobs the device cannot host), networks, Pareto set, CMOS table
    report_figs/accuracy.png          test accuracy by precision and neuron (Fig. 6), one panel per
                                      other varying setting                     [several networks]
    report_figs/pareto.png            test accuracy vs device energy per sample (write + read,
                                      selected pattern), Pareto front in red    [several networks]
    report_figs/energy_by_network.png write / read energy per layer, one bar per network
                                                                   [two or more with device energy]
    report_figs/activity_by_network.png  spike rate, sparsity, AOR per layer at the last epoch
                                                                   [two or more completed networks]
    report_figs/<Nk>_<settings>/      one network's figures: write_energy.png (Fig. 7c: per layer,
                                      one bar per pattern, last epoch and QUEST's windows),
                                      transitions.png (Fig. 7b: share of each i -> j change),
                                      activity.png (Figs. 8-9: per layer over epochs),
                                      read_energy.png (per layer, one bar per pattern)

A *network* is one training: jobs that differ only in `pattern.selection` (or in paths, loggers,
progress bars) are one network, counted once in the figures and the Pareto set. Per-network
figures are drawn for a single run; for a multirun (--per-run auto) for the Pareto set and the
most accurate network, --per-run all for every completed network. Networks without device
energy (not realizable on the device, e.g. LIF or fp32 or too many levels) are left out of the
energy figures and the Pareto set, and the report says why.
"""
from quest.report.build import main, write_report

__all__ = ["main", "write_report"]
