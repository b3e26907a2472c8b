"""DAFormer and SegFormer decode heads: shapes, structure, every level used."""
import pytest
import torch
from torch import nn

from pipa_video.models.heads import (DAFormerHead, DepthwiseSeparableConvBNReLU, SegFormerHead,
                                     build_decode_head)

IN_CHANNELS = (16, 32, 64, 128)


def _features(batch=2, size=(64, 96), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size[0] // r, size[1] // r, generator=gen)
            for c, r in zip(IN_CHANNELS, (4, 8, 16, 32))]


@pytest.mark.parametrize("head_cls", [DAFormerHead, SegFormerHead])
def test_head_returns_stride4_logits_and_fused_feature(head_cls):
    head = head_cls(in_channels=IN_CHANNELS, num_classes=7, channels=24, dropout=0.1).eval()
    logits, fused = head(_features())
    assert logits.shape == (2, 7, 16, 24)
    assert fused.shape == (2, 24, 16, 24)
    assert head.channels == 24
    # the logits are the classifier applied to the returned feature (dropout is off in eval)
    torch.testing.assert_close(logits, head.conv_seg(fused))


@pytest.mark.parametrize("head_cls", [DAFormerHead, SegFormerHead])
def test_every_level_reaches_the_output(head_cls):
    head = head_cls(in_channels=IN_CHANNELS, num_classes=5, channels=16, dropout=0.0).eval()
    feats = _features()
    with torch.no_grad():
        base, _ = head(feats)
        for level in range(4):
            changed = list(feats)
            changed[level] = changed[level] + 1.0
            assert not torch.allclose(head(changed)[0], base), f"level {level} ignored"


def test_daformer_fusion_is_the_sepaspp_design():
    head = DAFormerHead(in_channels=IN_CHANNELS, num_classes=19, channels=32)
    assert [type(m).__name__ for m in head.embed_layers] == ["MLPEmbed"] * 4
    assert all(m.proj.out_features == 32 for m in head.embed_layers)
    branches = head.fuse_layer.aspp_modules
    assert len(branches) == 4
    assert branches[0].conv.kernel_size == (1, 1) and branches[0].conv.in_channels == 4 * 32
    for branch, dilation in zip(branches[1:], (6, 12, 18)):
        assert isinstance(branch, DepthwiseSeparableConvBNReLU)
        dw = branch.depthwise_conv.conv
        assert dw.kernel_size == (3, 3) and dw.dilation == (dilation, dilation) and dw.padding == (dilation, dilation)
        assert dw.groups == dw.in_channels == 4 * 32
        assert isinstance(branch.depthwise_conv.bn, nn.BatchNorm2d)
        assert branch.pointwise_conv.conv.kernel_size == (1, 1)
    bottleneck = head.fuse_layer.bottleneck
    assert bottleneck.conv.in_channels == 4 * 32 and bottleneck.conv.kernel_size == (3, 3)
    assert isinstance(head.dropout, nn.Dropout2d) and head.dropout.p == 0.1


def test_dropout_acts_in_training_only():
    head = DAFormerHead(in_channels=IN_CHANNELS, num_classes=3, channels=16, dropout=0.5)
    feats = _features(batch=1)
    head.train()
    torch.manual_seed(0)
    a, _ = head(feats)
    torch.manual_seed(1)
    b, _ = head(feats)
    assert not torch.allclose(a, b)
    head.eval()
    torch.testing.assert_close(head(feats)[0], head(feats)[0])


def test_build_decode_head_names_and_errors():
    assert isinstance(build_decode_head("segformer", in_channels=IN_CHANNELS, num_classes=2, channels=8,
                                        dropout=0.0), SegFormerHead)
    with pytest.raises(ValueError, match="unknown decode head 'hrda'.*daformer.*segformer"):
        build_decode_head("hrda", in_channels=IN_CHANNELS, num_classes=2, channels=8, dropout=0.0)
    with pytest.raises(ValueError, match="expected 4 feature maps, got 3"):
        DAFormerHead(in_channels=IN_CHANNELS, num_classes=2, channels=8)(_features()[:3])


def _twin(head_cls, kwargs_a, kwargs_b):
    """Two heads with the same parameters and BatchNorm statistics, built with different options."""
    torch.manual_seed(0)
    a = head_cls(in_channels=IN_CHANNELS, num_classes=7, channels=24, dropout=0.0, **kwargs_a)
    b = head_cls(in_channels=IN_CHANNELS, num_classes=7, channels=24, dropout=0.0, **kwargs_b)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is tested too
        for m_a, m_b in zip(a.modules(), b.modules()):
            if isinstance(m_a, nn.BatchNorm2d):
                for t_a, t_b in ((m_a.running_mean, m_b.running_mean), (m_a.running_var, m_b.running_var)):
                    t_a.uniform_(0.5, 1.5)
                    t_b.copy_(t_a)
    return a, b


def _outputs_and_grads(head, feats, train):
    head.train(train)
    feats = [f.clone().requires_grad_(True) for f in feats]
    logits, fused = head(feats)
    (logits.square().mean() + fused.mean()).backward()
    grads = {n: p.grad for n, p in head.named_parameters()}
    return logits.detach(), fused.detach(), grads, [f.grad for f in feats]


def _assert_same(a, b, train, atol=1e-5):
    feats = _features()
    la, fa, ga, ia = _outputs_and_grads(a, feats, train)
    lb, fb, gb, ib = _outputs_and_grads(b, feats, train)
    torch.testing.assert_close(la, lb, atol=atol, rtol=1e-4)
    torch.testing.assert_close(fa, fb, atol=atol, rtol=1e-4)
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], atol=atol, rtol=1e-4, msg=name)
    for x, y in zip(ia, ib):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("head_cls", [DAFormerHead, SegFormerHead])
def test_channels_last_changes_the_layout_not_the_outputs_or_gradients(head_cls, train, monkeypatch):
    from pipa_video.models import heads

    monkeypatch.setattr(heads, "CHANNELS_LAST_DEVICES", ("cpu", "cuda"))  # the CUDA path, run on the CPU
    extra = {"fold_fuse": False} if head_cls is SegFormerHead else {}
    fast, plain = _twin(head_cls, {"channels_last": True, **extra}, {"channels_last": False, **extra})
    _assert_same(fast, plain, train)
    fast.eval()
    logits, fused = fast(_features())
    assert fused.is_contiguous(memory_format=torch.channels_last) and not fused.is_contiguous()
    assert plain.eval()(_features())[1].is_contiguous()


def test_on_the_cpu_the_daformer_head_keeps_nchw_and_the_segformer_head_nhwc():
    """oneDNN runs the DAFormer head's dilated and 3x3 convs slower on NHWC (heads.CHANNELS_LAST_DEVICES)."""
    with torch.no_grad():
        daformer = DAFormerHead(in_channels=IN_CHANNELS, num_classes=3, channels=16).eval()(_features())[1]
        segformer = SegFormerHead(in_channels=IN_CHANNELS, num_classes=3, channels=16).eval()(_features())[1]
    assert daformer.is_contiguous()
    assert segformer.is_contiguous(memory_format=torch.channels_last) and not segformer.is_contiguous()


@pytest.mark.parametrize("train", [True, False])
def test_folded_segformer_fuse_is_the_concatenating_head(train):
    folded, concat = _twin(SegFormerHead, {"fold_fuse": True}, {"fold_fuse": False})
    _assert_same(folded, concat, train)
    assert folded.state_dict().keys() == concat.state_dict().keys()  # checkpoints are interchangeable


def test_pointwise_conv_is_the_conv():
    from pipa_video.models.heads import apply_conv, is_pointwise, pointwise_conv

    conv = nn.Conv2d(12, 5, 1)
    x = torch.randn(2, 12, 7, 9)
    assert is_pointwise(conv) and not is_pointwise(nn.Conv2d(12, 5, 3, padding=1))
    assert not is_pointwise(nn.Conv2d(12, 6, 1, groups=2)) and not is_pointwise(nn.Conv2d(12, 5, 1, stride=2))
    torch.testing.assert_close(pointwise_conv(x, conv), conv(x))
    nhwc = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pointwise_conv(nhwc, conv), conv(x))
    assert apply_conv(nhwc, conv).is_contiguous(memory_format=torch.channels_last)  # the matmul path
    assert apply_conv(x, conv).is_contiguous()  # an NCHW input keeps the conv
