"""Independent re-implementations of MiT in the two foreign checkpoint layouts (test helpers).

``OfficialMiT`` follows SegFormer's ``mix_transformer.py`` (keys ``patch_embed1``, ``block1.0.attn.q``,
``mlp.dwconv.dwconv``, ``norm1``, ``head``); ``MMSegMiT`` follows mmsegmentation 1.x ``mit.py`` (keys
``layers.0.0.projection``, ``attn.attn.in_proj_weight`` via ``nn.MultiheadAttention``, 1x1-conv
``ffn.layers``). Neither imports timm or pipa_video, so their state dicts and outputs are an
independent reference for the key maps and for the architecture itself.
"""
from __future__ import annotations

import torch
from torch import nn

BLOCK_EPS = 1e-6


def _to_tokens(x):
    return x.flatten(2).transpose(1, 2)


def _to_map(x, h, w):
    return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


# ------------------------------------------------------------------------- official SegFormer layout
class _OfficialAttention(nn.Module):
    def __init__(self, dim, heads, sr_ratio):
        super().__init__()
        self.heads, self.scale, self.sr_ratio = heads, (dim // heads) ** -0.5, sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x, h, w):
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)
        if self.sr_ratio > 1:
            x = self.norm(_to_tokens(self.sr(_to_map(x, h, w))))
        kv = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(b, n, c))


class _DWConv(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)


class _OfficialMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = _DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, h, w):
        x = self.fc1(x)
        x = _to_tokens(self.dwconv.dwconv(_to_map(x, h, w)))
        return self.fc2(self.act(x))


class _OfficialBlock(nn.Module):
    def __init__(self, dim, heads, sr_ratio, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.attn = _OfficialAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.mlp = _OfficialMlp(dim, dim * mlp_ratio)

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x), h, w)


class _OfficialPatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch, stride):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, stride=stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(_to_tokens(x)), h, w


class OfficialMiT(nn.Module):
    def __init__(self, dims, depths, heads, sr_ratios=(8, 4, 2, 1), mlp_ratio=4, num_classes=1000):
        super().__init__()
        in_chans = 3
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            setattr(self, f"patch_embed{s + 1}", _OfficialPatchEmbed(in_chans, dims[s], patch, stride))
            setattr(self, f"block{s + 1}", nn.ModuleList(
                [_OfficialBlock(dims[s], heads[s], sr_ratios[s], mlp_ratio) for _ in range(depths[s])]))
            setattr(self, f"norm{s + 1}", nn.LayerNorm(dims[s], eps=BLOCK_EPS))
            in_chans = dims[s]
        # ImageNet classifier of the released files (0: none, to count the encoder alone)
        self.head = nn.Linear(dims[3], num_classes) if num_classes else None

    def forward(self, x):
        outs = []
        for s in range(1, 5):
            x, h, w = getattr(self, f"patch_embed{s}")(x)
            for blk in getattr(self, f"block{s}"):
                x = blk(x, h, w)
            x = _to_map(getattr(self, f"norm{s}")(x), h, w)
            outs.append(x)
        return outs


# ------------------------------------------------------------------------------ mmsegmentation 1.x
class _MMSegPatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch, stride):
        super().__init__()
        self.projection = nn.Conv2d(in_chans, dim, patch, stride=stride, padding=patch // 2)
        self.norm = nn.LayerNorm(dim, eps=BLOCK_EPS)


class _MMSegAttention(nn.Module):
    def __init__(self, dim, heads, sr_ratio):
        super().__init__()
        self.sr_ratio = sr_ratio
        self.attn = nn.MultiheadAttention(dim, heads, bias=True)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=BLOCK_EPS)

    def forward(self, x, h, w):
        kv = self.norm(_to_tokens(self.sr(_to_map(x, h, w)))) if self.sr_ratio > 1 else x
        q, kv = x.transpose(0, 1), kv.transpose(0, 1)  # nn.MultiheadAttention is sequence-first
        return self.attn(query=q, key=kv, value=kv, need_weights=False)[0].transpose(0, 1)


class _MMSegFFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
                                    nn.GELU(), nn.Dropout(0.0), nn.Conv2d(hidden, dim, 1), nn.Dropout(0.0))

    def forward(self, x, h, w):
        return _to_tokens(self.layers(_to_map(x, h, w)))


class _MMSegLayer(nn.Module):
    def __init__(self, dim, heads, sr_ratio, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.attn = _MMSegAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.ffn = _MMSegFFN(dim, dim * mlp_ratio)

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class MMSegMiT(nn.Module):
    def __init__(self, dims, depths, heads, sr_ratios=(8, 4, 2, 1), mlp_ratio=4):
        super().__init__()
        self.layers = nn.ModuleList()
        in_chans = 3
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            self.layers.append(nn.ModuleList([
                _MMSegPatchEmbed(in_chans, dims[s], patch, stride),
                nn.ModuleList([_MMSegLayer(dims[s], heads[s], sr_ratios[s], mlp_ratio) for _ in range(depths[s])]),
                nn.LayerNorm(dims[s], eps=BLOCK_EPS),
            ]))
            in_chans = dims[s]

    def forward(self, x):
        outs = []
        for embed, blocks, norm in self.layers:
            x = embed.projection(x)
            h, w = x.shape[-2:]
            x = embed.norm(_to_tokens(x))
            for blk in blocks:
                x = blk(x, h, w)
            x = _to_map(norm(x), h, w)
            outs.append(x)
        return outs


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter distinct random values (norm weights included), so a misplaced tensor
    changes the output instead of hiding behind a default init of ones and zeros."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.1
            is_norm_scale = p.dim() == 1 and "norm" in name and name.endswith("weight")
            p.copy_(1.0 + noise if is_norm_scale else noise)
    return module
