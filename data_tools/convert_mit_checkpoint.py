"""Convert a MiT (SegFormer) backbone checkpoint between layouts, checking it against the variant.

Reads the official ``mit_b*.pth`` (SegFormer/PVT keys), an mmsegmentation 1.x checkpoint (whole
segmentor or backbone only) or a timm-layout file, checks that every tensor of the chosen variant is
present with its shape, and writes the timm layout pipa-video loads (or, ``--layout mmseg``, an
mmsegmentation checkpoint ``{'meta', 'state_dict': {'backbone.*'}}``). The output is written to a
temp file and renamed, so an interrupted run never leaves a partial file.

    python data_tools/convert_mit_checkpoint.py pretrained/mit_b5.pth pretrained/mit_b5_timm.pth --arch mit_b5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipa_video.errors import run_command
from pipa_video.models.backbones import MIT_ARCHS, mit_state_shapes
from pipa_video.models.checkpoint import (BACKBONE_PREFIX, CheckpointError, MiTLayout, check_state_dict,
                                          mit_checkpoint_filter_fn, read_state_dict, save_checkpoint,
                                          timm_to_mmseg)

OUTPUT_LAYOUTS = (MiTLayout.TIMM.value, MiTLayout.MMSEG.value)


def _matching_archs(state: dict) -> list[str]:
    """The MiT variants whose every key and shape ``state`` matches (for a helpful error)."""
    first_conv = state.get("patch_embed.proj.weight")
    if first_conv is None:
        return []
    matches = []
    for name, arch in MIT_ARCHS.items():
        if arch.embed_dims[0] != first_conv.shape[0]:
            continue  # skip building the meta model of variants that cannot match
        try:
            check_state_dict(mit_state_shapes(name), state, source="", target=name)
        except CheckpointError:
            continue
        matches.append(name)
    return matches


def convert_mit_checkpoint(src: str | Path, dst: str | Path, *, arch: str = "mit_b5",
                           layout: str = MiTLayout.TIMM.value, prefix: str | None = None,
                           allow_pickle: bool = False) -> Path:
    """Read ``src`` in any MiT layout, check it against ``arch``, write ``dst`` in ``layout``."""
    if arch not in MIT_ARCHS:
        raise ValueError(f"unknown MiT variant {arch!r}; expected one of {list(MIT_ARCHS)}")
    if layout not in OUTPUT_LAYOUTS:
        raise ValueError(f"unknown output layout {layout!r}; expected one of {list(OUTPUT_LAYOUTS)}")
    state = mit_checkpoint_filter_fn(read_state_dict(src, prefix=prefix, allow_pickle=allow_pickle))
    try:
        check_state_dict(mit_state_shapes(arch), state, source=str(src), target=arch)
    except CheckpointError as err:
        matches = _matching_archs(state)
        hint = f"\n  the checkpoint matches {matches}: pass --arch {matches[0]}" if matches else ""
        raise CheckpointError(f"{err}{hint}") from err
    if layout == MiTLayout.MMSEG.value:
        mmseg_state = {BACKBONE_PREFIX + k: v for k, v in timm_to_mmseg(state).items()}
        payload = {"meta": {"arch": arch, "converted_from": str(src), "converter": "pipa_video"},
                   "state_dict": mmseg_state}
    else:
        payload = state
    return save_checkpoint(payload, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="input checkpoint (official mit_b*.pth, mmseg or timm layout)")
    parser.add_argument("dst", help="output file")
    parser.add_argument("--arch", default="mit_b5", choices=list(MIT_ARCHS))
    parser.add_argument("--layout", default=MiTLayout.TIMM.value, choices=list(OUTPUT_LAYOUTS),
                        help="layout to write (default: timm, what pipa-video loads)")
    parser.add_argument("--prefix", default=None,
                        help="key prefix of the backbone in the input (default: 'backbone.' if present), "
                             "e.g. 'model.backbone.' for a DAFormer UDA checkpoint")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="unpickle arbitrary objects (mmengine training state); only for trusted files")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error too")
    args = parser.parse_args(argv)

    def run() -> int:
        out = convert_mit_checkpoint(args.src, args.dst, arch=args.arch, layout=args.layout,
                                     prefix=args.prefix, allow_pickle=args.allow_pickle)
        print(f"wrote {out} ({args.arch}, {args.layout} layout)")
        return 0

    # One error line and the exit code of its kind (pipa_video.errors): 4 for a bad checkpoint, 6 for I/O.
    return run_command(run, prog=Path(__file__).name, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
