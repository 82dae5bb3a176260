"""The working tree's training step gives the same numbers as QUEST at an earlier commit, bit for bit.

    python benchmarks/check_identical.py [--before-rev 4be567f] [--width 0.25] [--batch-size 8]

For IF_Hard and LIF_Soft at 2, 3 and 4 bits, in fp32 and under bf16 autocast (as
trainer.precision=bf16-mixed): the same VGG8 (weights copied) from both codes, one forward and
backward on the same batch; compares the logits, every parameter's gradient and every device layer's
weight levels with torch.equal. Exits 1 on any difference. Speed changes that claim "same values"
are checked with it (the fast paths are also tested against the plain definitions in tests/).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from ablation_fast_paths import quest_before  # noqa: E402


def check(args: argparse.Namespace) -> bool:
    from quest.models.vgg import SpikingVGG
    from quest.snn.encoding import DirectEncoder
    from quest_before.models.vgg import SpikingVGG as SpikingVGGBefore
    from quest_before.snn.encoding import DirectEncoder as DirectEncoderBefore

    ok = True
    for neuron in ("if_hard", "lif_soft"):
        for bits in (2, 3, 4):
            for mixed in (False, True):
                nets = []
                for vgg, enc in ((SpikingVGGBefore, DirectEncoderBefore), (SpikingVGG, DirectEncoder)):
                    torch.manual_seed(0)
                    nets.append(vgg(enc(4), {"name": neuron, "theta": 0.5}, bits=bits, width_mult=args.width))
                nets[1].load_state_dict(nets[0].state_dict())
                g = torch.Generator().manual_seed(1)
                x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
                y = torch.randint(0, 10, (args.batch_size,), generator=g)
                logits = []
                for net in nets:
                    with torch.autocast("cpu", torch.bfloat16, enabled=mixed):
                        out = net(x)
                        loss = F.cross_entropy(out.flatten(0, 1), y.repeat(out.shape[0]))
                    loss.backward()
                    logits.append(out)
                grads = [
                    n for (n, p0), p1 in zip(nets[0].named_parameters(), nets[1].parameters())
                    if not torch.equal(p0.grad, p1.grad)
                ]  # fmt: skip
                levels = all(
                    torch.equal(a.weight_levels(), b.weight_levels())
                    for (_, a), (_, b) in zip(nets[0].device_layers(), nets[1].device_layers())
                )
                same = torch.equal(logits[0], logits[1]) and not grads and levels
                ok &= same
                print(
                    f"{neuron} {bits}-bit {'bf16-mixed' if mixed else 'fp32'}: logits equal {torch.equal(logits[0], logits[1])}, "
                    f"levels equal {levels}, gradients differing: {grads or 'none'}"
                )
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before-rev", default="4be567f")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    with quest_before(args.before_rev):
        ok = check(args)
    print("identical" if ok else "DIFFERENT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
