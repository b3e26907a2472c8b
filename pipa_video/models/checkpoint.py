"""Backbone checkpoints: read them, map official layouts onto ours, load strictly, write atomically.

MiT weights come in three layouts, told apart by their first patch-embedding key:

- ``timm`` (ours): ``patch_embed.proj.weight``, ``stages.{s}.blocks.{b}.attn.q.weight``, ...
- ``official`` (SegFormer's ``mit_b*.pth``, PVT): ``patch_embed1.proj.weight``,
  ``block1.0.attn.q.weight``, ``block1.0.mlp.dwconv.dwconv.weight``, ``norm1.weight``, ``head.*``
- ``mmseg`` (mmsegmentation 1.x ``MixVisionTransformer``): ``layers.{s}.0.projection.weight``,
  ``layers.{s}.1.{b}.attn.attn.in_proj_weight`` (q, k, v stacked), ``...ffn.layers.{0,1,4}``
  (1x1 / depthwise / 1x1 convs), ``layers.{s}.2.weight``; usually under ``state_dict`` with a
  ``backbone.`` prefix.

Reading the file is ``pipa_video.checkpoint_io.read_checkpoint`` (weights only). Loading is all or nothing: :func:`load_backbone_weights` raises :class:`CheckpointError` listing every
missing, unexpected and wrongly shaped key rather than loading part of a checkpoint.
"""
from __future__ import annotations

import logging
import os
import re
from enum import Enum
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

# Reading and writing files is ``pipa_video.checkpoint_io`` (the one torch.load / torch.save);
# re-exported here for the backbone loaders and the conversion tool.
from pipa_video.checkpoint_io import (CheckpointError, pickle_loading, read_checkpoint,  # noqa: F401
                                      save_checkpoint)

logger = logging.getLogger(__name__)

BACKBONE_PREFIX = "backbone."
DDP_PREFIX = "module."
# Containers that training frameworks wrap a state dict in (mmengine/mmseg, DeiT/PVT, ...).
STATE_DICT_CONTAINERS = ("state_dict", "model")
# ImageNet classifier of the official and timm checkpoints: never part of a backbone.
CLASSIFIER_PREFIX = "head."
# Old torchvision checkpoints lack BatchNorm's counter; PyTorch fills it in on load.
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
MAX_LISTED_KEYS = 20


class MiTLayout(str, Enum):
    TIMM = "timm"
    OFFICIAL = "official"
    MMSEG = "mmseg"


# A key present in every checkpoint of each layout (the first patch-embedding conv).
_LAYOUT_MARKERS = {
    MiTLayout.TIMM: "patch_embed.proj.weight",
    MiTLayout.OFFICIAL: "patch_embed1.proj.weight",
    MiTLayout.MMSEG: "layers.0.0.projection.weight",
}


def unwrap_state_dict(checkpoint: Mapping[str, Any], *, source: str) -> dict[str, Tensor]:
    """The state dict inside a checkpoint (``state_dict`` / ``model`` / bare), ``module.`` stripped."""
    state = checkpoint
    for container in STATE_DICT_CONTAINERS:
        if isinstance(checkpoint.get(container), Mapping):
            state = checkpoint[container]
            break
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: not a state dict, these entries are not tensors: "
                              f"{_listing(not_tensors)}")
    state = dict(state)
    if state and all(k.startswith(DDP_PREFIX) for k in state):
        state = strip_prefix(state, DDP_PREFIX)
    return state


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def select_backbone(state: Mapping[str, Tensor], *, prefix: str | None, source: str) -> dict[str, Tensor]:
    """The backbone's entries of a (possibly whole-segmentor) state dict, prefix removed.

    ``prefix=None``: ``backbone.`` if any key has it (an mmseg/DAFormer segmentor checkpoint; its
    decode-head entries are left out on purpose and logged), else the whole dict. An explicit prefix
    (e.g. ``model.backbone.`` for a DAFormer UDA checkpoint) must match at least one key.
    """
    if prefix is None:
        prefix = BACKBONE_PREFIX if any(k.startswith(BACKBONE_PREFIX) for k in state) else ""
    if not prefix:
        return dict(state)
    selected = strip_prefix(state, prefix)
    if not selected:
        raise CheckpointError(f"{source}: no key starts with prefix {prefix!r}; keys look like "
                              f"{_listing(list(state), limit=5)}")
    left_out = [k for k in state if not k.startswith(prefix)]
    if left_out:
        logger.info("%s: loading the %d entries under %r; leaving out %d others (%s)", source,
                    len(selected), prefix, len(left_out), _listing(left_out, limit=5))
    return selected


def read_state_dict(path: str | os.PathLike, *, prefix: str | None = None,
                    allow_pickle: bool | None = None) -> dict[str, Tensor]:
    """Read a checkpoint file and return its backbone state dict (see :func:`select_backbone`)."""
    state = unwrap_state_dict(read_checkpoint(path, allow_pickle=allow_pickle), source=str(path))
    return select_backbone(state, prefix=prefix, source=str(path))


# ------------------------------------------------------------------------------------- MiT layouts
def detect_mit_layout(state: Mapping[str, Tensor]) -> MiTLayout:
    found = [layout for layout, marker in _LAYOUT_MARKERS.items() if marker in state]
    if len(found) != 1:
        raise CheckpointError(
            "cannot tell the MiT checkpoint layout: expected exactly one of the keys "
            f"{list(_LAYOUT_MARKERS.values())}, found {[_LAYOUT_MARKERS[f] for f in found]}; "
            f"keys look like {_listing(list(state), limit=5)} (if the backbone sits under a prefix, "
            "e.g. 'model.backbone.' in a DAFormer checkpoint, pass it as prefix / --prefix)")
    return found[0]


def _timm_embed(stage: int) -> str:
    """The timm module of stage ``stage``'s patch embedding (stage 0's sits outside ``stages``)."""
    return "patch_embed" if stage == 0 else f"stages.{stage}.downsample"


Rule = tuple[re.Pattern, Callable[[re.Match], "str | None"]]


def _apply_rules(state: Mapping[str, Tensor], rules: Iterable[Rule]) -> dict[str, Tensor]:
    """Rename keys by the first rule whose pattern matches in full; ``None`` drops the key.

    Keys no rule matches pass through unchanged, so the strict check reports them as unexpected.
    """
    rules = list(rules)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for pattern, rename in rules:
            match = pattern.fullmatch(key)
            if match:
                new_key = rename(match)
                if new_key is not None:
                    out[new_key] = value
                break
        else:
            out[key] = value
    return out


_OFFICIAL_RULES: list[Rule] = [
    (re.compile(r"head\..+"), lambda m: None),
    (re.compile(r"patch_embed(\d)\.(.+)"), lambda m: f"{_timm_embed(int(m[1]) - 1)}.{m[2]}"),
    (re.compile(r"block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)"),
     lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.mlp.dwconv.{m[3]}"),
    (re.compile(r"block(\d)\.(\d+)\.(.+)"), lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{m[3]}"),
    (re.compile(r"norm(\d)\.(.+)"), lambda m: f"stages.{int(m[1]) - 1}.norm.{m[2]}"),
]


def official_to_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """SegFormer/PVT official keys -> timm keys; the ImageNet classifier (``head.*``) is dropped."""
    return _apply_rules(state, _OFFICIAL_RULES)


_MMSEG_FFN = {"0": "fc1", "1": "dwconv", "4": "fc2"}  # MixFFN's Sequential: fc1, pe_conv, act, drop, fc2
_TIMM_FFN = {v: k for k, v in _MMSEG_FFN.items()}
_MMSEG_BLOCK = r"layers\.(\d+)\.1\.(\d+)\."
_TIMM_BLOCK = r"stages\.(\d+)\.blocks\.(\d+)\."


def _squeeze_1x1(value: Tensor) -> Tensor:
    """A 1x1 conv weight (out, in, 1, 1) as a linear weight (out, in); other shapes unchanged."""
    return value.flatten(1) if value.dim() == 4 and value.shape[2:] == (1, 1) else value


def mmseg_to_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """mmsegmentation 1.x ``MixVisionTransformer`` keys -> timm keys (q/kv split, 1x1 convs squeezed)."""
    def block(m: re.Match) -> str:
        return f"stages.{m[1]}.blocks.{m[2]}"

    renamed = _apply_rules(state, [
        (re.compile(r"layers\.(\d+)\.0\.projection\.(.+)"), lambda m: f"{_timm_embed(int(m[1]))}.proj.{m[2]}"),
        (re.compile(r"layers\.(\d+)\.0\.norm\.(.+)"), lambda m: f"{_timm_embed(int(m[1]))}.norm.{m[2]}"),
        (re.compile(_MMSEG_BLOCK + r"attn\.attn\.in_proj_(weight|bias)"),
         lambda m: f"{block(m)}.attn.in_proj.{m[3]}"),  # split below
        (re.compile(_MMSEG_BLOCK + r"attn\.attn\.out_proj\.(.+)"), lambda m: f"{block(m)}.attn.proj.{m[3]}"),
        (re.compile(_MMSEG_BLOCK + r"attn\.(sr|norm)\.(.+)"), lambda m: f"{block(m)}.attn.{m[3]}.{m[4]}"),
        (re.compile(_MMSEG_BLOCK + r"(norm1|norm2)\.(.+)"), lambda m: f"{block(m)}.{m[3]}.{m[4]}"),
        (re.compile(_MMSEG_BLOCK + r"ffn\.layers\.([014])\.(.+)"),
         lambda m: f"{block(m)}.mlp.{_MMSEG_FFN[m[3]]}.{m[4]}"),
        (re.compile(r"layers\.(\d+)\.2\.(.+)"), lambda m: f"stages.{m[1]}.norm.{m[2]}"),
    ])
    out: dict[str, Tensor] = {}
    for key, value in renamed.items():
        if ".attn.in_proj." in key:
            # nn.MultiheadAttention stacks q, k, v along dim 0; MiT's kv Linear is k then v.
            if value.shape[0] % 3:
                raise CheckpointError(f"{key}: in_proj of shape {tuple(value.shape)} is not 3 stacked "
                                      "projections (q, k, v)")
            dim = value.shape[0] // 3
            head, param = key.rsplit(".in_proj.", 1)
            out[f"{head}.q.{param}"] = value[:dim]
            out[f"{head}.kv.{param}"] = value[dim:]
        elif re.fullmatch(_TIMM_BLOCK + r"mlp\.fc[12]\.weight", key):
            out[key] = _squeeze_1x1(value)
        else:
            out[key] = value
    return out


def timm_to_mmseg(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """timm keys -> mmsegmentation 1.x keys (without the ``backbone.`` prefix); the reverse map."""
    def block(m: re.Match) -> str:
        return f"layers.{m[1]}.1.{m[2]}"

    def embed_stage(name: str) -> int:
        return 0 if name == "patch_embed" else int(name.split(".")[1])

    embed = r"(patch_embed|stages\.\d+\.downsample)"
    renamed = _apply_rules(state, [
        (re.compile(embed + r"\.proj\.(.+)"), lambda m: f"layers.{embed_stage(m[1])}.0.projection.{m[2]}"),
        (re.compile(embed + r"\.norm\.(.+)"), lambda m: f"layers.{embed_stage(m[1])}.0.norm.{m[2]}"),
        (re.compile(_TIMM_BLOCK + r"attn\.(q|kv)\.(.+)"), lambda m: f"{block(m)}.attn.{m[3]}.{m[4]}"),
        (re.compile(_TIMM_BLOCK + r"attn\.proj\.(.+)"), lambda m: f"{block(m)}.attn.attn.out_proj.{m[3]}"),
        (re.compile(_TIMM_BLOCK + r"attn\.(sr|norm)\.(.+)"), lambda m: f"{block(m)}.attn.{m[3]}.{m[4]}"),
        (re.compile(_TIMM_BLOCK + r"(norm1|norm2)\.(.+)"), lambda m: f"{block(m)}.{m[3]}.{m[4]}"),
        (re.compile(_TIMM_BLOCK + r"mlp\.(fc1|dwconv|fc2)\.(.+)"),
         lambda m: f"{block(m)}.ffn.layers.{_TIMM_FFN[m[3]]}.{m[4]}"),
        (re.compile(r"stages\.(\d+)\.norm\.(.+)"), lambda m: f"layers.{m[1]}.2.{m[2]}"),
    ])
    out: dict[str, Tensor] = {}
    for key, value in renamed.items():
        match = re.fullmatch(_MMSEG_BLOCK + r"attn\.(q|kv)\.(weight|bias)", key)
        if match:
            if match[3] == "kv":
                continue  # joined with q below
            kv_key = key.replace(".attn.q.", ".attn.kv.")
            if kv_key not in renamed:
                raise CheckpointError(f"{kv_key}: missing, cannot build in_proj_{match[4]} from q alone")
            out[f"{block(match)}.attn.attn.in_proj_{match[4]}"] = torch.cat([value, renamed[kv_key]])
        elif re.fullmatch(_MMSEG_BLOCK + r"ffn\.layers\.[04]\.weight", key) and value.dim() == 2:
            out[key] = value[:, :, None, None]  # linear -> 1x1 conv
        else:
            out[key] = value
    return out


def mit_checkpoint_filter_fn(state: Mapping[str, Tensor], model: nn.Module | None = None) -> dict[str, Tensor]:
    """timm-style filter: any MiT layout (official, mmseg, timm) -> our timm keys. ``model`` unused."""
    layout = detect_mit_layout(state)
    if layout is MiTLayout.OFFICIAL:
        return official_to_timm(state)
    if layout is MiTLayout.MMSEG:
        return mmseg_to_timm(state)
    return {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}


# ------------------------------------------------------------------------------------ strict load
def check_state_dict(expected: Mapping[str, Tensor | torch.Size], state: Mapping[str, Tensor], *,
                     source: str, target: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the keys and shapes of ``expected``."""
    def shape(value: Tensor | torch.Size) -> tuple[int, ...]:
        return tuple(value.shape) if isinstance(value, Tensor) else tuple(value)

    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: checkpoint {shape(state[k])} vs model {shape(expected[k])}"
                  for k in expected if k in state and shape(state[k]) != shape(expected[k])]
    if missing or unexpected or mismatched:
        parts = [f"{name} ({len(keys)}): {_listing(keys)}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape mismatch", mismatched)) if keys]
        raise CheckpointError(f"{source} does not match {target}; nothing was loaded.\n  " + "\n  ".join(parts))


def load_backbone_weights(model: nn.Module, path: str | os.PathLike, *, prefix: str | None = None,
                          allow_pickle: bool | None = None) -> None:
    """Load a local checkpoint into a backbone, all keys or none.

    The model's ``filter_checkpoint`` (if it has one) maps foreign layouts onto its own keys first.
    Keys under the model's ``NEW_LAYERS`` prefixes (layers it adds that ImageNet weights lack, e.g. a
    plain ViT's feature pyramid) keep their fresh initialisation and may not be in the file.
    """
    state = read_state_dict(path, prefix=prefix, allow_pickle=allow_pickle)
    filter_fn = getattr(model, "filter_checkpoint", None)
    if filter_fn is not None:
        state = filter_fn(state)
    new = tuple(getattr(model, "NEW_LAYERS", ()))
    expected = {k: v for k, v in model.state_dict().items() if not (new and k.startswith(new))}
    check_state_dict(expected, state, source=str(path), target=type(model).__name__)
    model.load_state_dict(state, strict=False)  # check_state_dict has rejected every other difference
    logger.info("loaded %d tensors from %s into %s", len(state), path, type(model).__name__)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Tensor], *, source: str, target: str) -> None:
    """Load ``state`` into ``model``, all keys or none; a state saved from a DDP wrapper loads too.

    Only ``OPTIONAL_SUFFIXES`` keys (BatchNorm batch counters) may be missing; they keep the model's values.
    """
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_state_dict(model.state_dict(), state, source=source, target=target)
    model.load_state_dict(state, strict=False)  # check_state_dict has rejected every other difference


def _listing(keys: list[str], *, limit: int = MAX_LISTED_KEYS) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... and {len(keys) - limit} more" if len(keys) > limit else "")
