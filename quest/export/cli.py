"""quest-export: a trained run's checkpoint -> a device programming map, or a NIR graph.

    quest-export map <run>/checkpoints/last.ckpt [--pattern N] [--from OLDER] [--out DIR]
    quest-export nir <run>/checkpoints/last.ckpt [--lossy] [--dt 1e-4] [--out FILE.nir]

Files go to <run>/export/ unless --out says otherwise. A failure is one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quest.export.run import ExportError, TrainedRun, load_run


def _older_map(source: str, pattern: int):
    from quest.export.programming_map import build_map, read_map

    path = Path(source)
    if path.suffix == ".ckpt" or (path / "checkpoints").is_dir():
        return build_map(load_run(path), pattern)
    return read_map(path)


def _map(args: argparse.Namespace, run: TrainedRun) -> list[Path]:
    from quest.export.figure import programming_energy_figure
    from quest.export.programming_map import build_map, reprogramming, write_map

    arrays, manifest = build_map(run, args.pattern)
    if args.older:
        manifest["reprogramming"] = reprogramming(_older_map(args.older, manifest["device"]["pattern"]), (arrays, manifest))
    out = Path(args.out) if args.out else run.run_dir / "export"
    written = [write_map(arrays, manifest, out), out / manifest["files"]["arrays"]]
    written.append(programming_energy_figure(manifest, out / "programming_energy.png"))
    energy = manifest["programming_energy_fJ"]
    print(f"programming map of {len(energy['layers'])} device layers on {manifest['device']['card']}, "
          f"pattern {manifest['device']['pattern_text']}: {energy['total'] / 1e3:.3f} pJ onto fresh cells"
          + (f", {manifest['reprogramming']['total_fJ'] / 1e3:.3f} pJ to re-program from {args.older}"
             if args.older else ""))
    return written


def _nir(args: argparse.Namespace, run: TrainedRun) -> list[Path]:
    try:
        import nir  # noqa: F401
    except ImportError:
        raise ExportError("quest-export nir needs the nir package: pip install 'quest-snn[export]'") from None
    from quest.export.device import cell_mapping
    from quest.export.nir_graph import to_nir, write_nir
    from quest.export.programming_map import selected_pattern

    pattern = None
    if run.model.bits is not None:
        try:
            pattern = cell_mapping(run.config.device, run.model.bits,
                                   args.pattern if args.pattern is not None else selected_pattern(run))
        except ValueError:  # no pattern recorded, or the card cannot hold the levels: no pattern metadata
            pattern = None
    shape = tuple(args.input_shape) if args.input_shape else (len(run.config.data.mean), 32, 32)
    graph = to_nir(run, shape, lossy=args.lossy, dt=args.dt, pattern=pattern)
    path = write_nir(graph, args.out or run.run_dir / "export" / "net.nir")
    exact = graph.metadata["quest.exact"]
    print(f"NIR graph of {len(graph.nodes)} nodes: {path} ({'exact' if exact else 'lossy: see quest.approximations'})")
    return [path]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quest-export", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("map", help="device programming map (.npz + JSON manifest) and its programming energy")
    m.add_argument("checkpoint", help="a run's checkpoint (or run folder: its checkpoints/last.ckpt)")
    m.add_argument("--pattern", type=int, default=None, help="R-S pattern number (default: the run's selected one)")
    m.add_argument("--from", dest="older", default=None,
                   help="an older map (JSON or folder) or checkpoint of the same net: adds the re-programming energy")
    m.add_argument("--out", default=None, help="output folder (default <run>/export)")
    n = sub.add_parser("nir", help="NIR 1.0 graph (HDF5)")
    n.add_argument("checkpoint", help="a run's checkpoint (or run folder: its checkpoints/last.ckpt)")
    n.add_argument("--lossy", action="store_true", help="approximate what NIR cannot represent, listing it in the metadata")
    n.add_argument("--dt", type=float, default=1e-4, help="NIR time step in seconds (default 1e-4)")
    n.add_argument("--pattern", type=int, default=None, help="R-S pattern for the metadata (default: the run's)")
    n.add_argument("--input-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"))
    n.add_argument("--out", default=None, help="output file (default <run>/export/net.nir)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run = load_run(args.checkpoint)
        written = _map(args, run) if args.command == "map" else _nir(args, run)
    except ExportError as e:
        print(f"quest-export: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
