import pytest
import torch
from torch import nn

from pipa_video.engine.optim import build_optimizer, norm_parameters


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.LayerNorm(4))
        self.head = nn.Conv2d(4, 2, 1)

    def param_groups(self):
        return {"backbone": list(self.backbone.parameters()), "head": list(self.head.parameters())}


def _build(net, **kwargs):
    return build_optimizer(net.param_groups(), lr=6e-5, head_lr_mult=10.0, weight_decay=0.01,
                           betas=(0.9, 0.999), **kwargs)


def test_groups_learning_rates_and_decay_on_every_parameter():
    net = Net()
    opt = _build(net)
    assert isinstance(opt, torch.optim.AdamW)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"backbone", "head"}
    assert groups["backbone"]["lr"] == pytest.approx(6e-5) and groups["backbone"]["lr_mult"] == 1.0
    assert groups["head"]["lr"] == pytest.approx(6e-4) and groups["head"]["lr_mult"] == 10.0
    # DAFormer-style default: norms and biases are decayed too.
    assert all(g["weight_decay"] == 0.01 for g in opt.param_groups)
    assert {id(p) for p in groups["backbone"]["params"]} == {id(p) for p in net.backbone.parameters()}
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_no_decay_parameters_get_a_twin_group():
    net = Net()
    norms = norm_parameters(net.backbone)
    assert {id(p) for p in norms} == {id(net.backbone[1].weight), id(net.backbone[1].bias),
                                      id(net.backbone[3].weight), id(net.backbone[3].bias)}
    opt = _build(net, no_decay=norms)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"backbone", "backbone/no_decay", "head"}
    assert groups["backbone/no_decay"]["weight_decay"] == 0.0
    assert groups["backbone/no_decay"]["lr"] == groups["backbone"]["lr"]
    assert len(groups["backbone"]["params"]) == 4 and len(groups["backbone/no_decay"]["params"]) == 4


def test_head_moves_ten_times_faster_on_the_first_step():
    torch.manual_seed(0)
    back, head = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    opt = build_optimizer({"backbone": [back], "head": [head]}, lr=0.1, head_lr_mult=10.0, weight_decay=0.0,
                          betas=(0.9, 0.999))
    (back.sum() + head.sum()).backward()
    opt.step()
    assert torch.allclose(head, 10 * back)  # Adam's first step moves every weight by lr


def test_bad_groups_are_rejected_with_their_names():
    net = Net()
    with pytest.raises(ValueError, match="decoder"):
        build_optimizer({"decoder": list(net.head.parameters())}, lr=1e-3, head_lr_mult=10, weight_decay=0,
                        betas=(0.9, 0.999))
    shared = list(net.head.parameters())
    with pytest.raises(ValueError, match="'backbone' and in group 'head'"):
        build_optimizer({"backbone": shared, "head": shared}, lr=1e-3, head_lr_mult=10, weight_decay=0,
                        betas=(0.9, 0.999))
    with pytest.raises(ValueError, match="no parameters"):
        build_optimizer({"backbone": [], "head": []}, lr=1e-3, head_lr_mult=10, weight_decay=0, betas=(0.9, 0.999))
    with pytest.raises(TypeError, match="Tensor"):
        build_optimizer({"head": [torch.zeros(2)]}, lr=1e-3, head_lr_mult=10, weight_decay=0, betas=(0.9, 0.999))


def test_fused_kernel_only_when_every_parameter_is_on_cuda():
    from types import SimpleNamespace

    from pipa_video.engine.optim import use_fused

    def fake(cuda, floating=True):
        return SimpleNamespace(is_cuda=cuda, is_floating_point=lambda: floating)

    assert use_fused([fake(True), fake(True)])
    assert not use_fused([fake(True), fake(False)])  # one CPU parameter: the fused kernel would refuse
    assert not use_fused([fake(True, floating=False)])
    assert not use_fused([])
    assert not _build(Net()).defaults["fused"]  # CPU parameters: the default implementation


def test_fused_adamw_makes_the_same_update():
    """The fused kernel (CPU build here; CUDA on a GPU) and the default implementation agree."""
    torch.manual_seed(0)
    nets = [Net(), Net()]
    nets[1].load_state_dict(nets[0].state_dict())
    initial = nets[0].head.weight.detach().clone()
    opts = [_build(nets[0], fused=False), _build(nets[1], fused=True)]
    assert opts[1].defaults["fused"] and not opts[0].defaults["fused"]
    targets = [torch.randn_like(p) for p in nets[0].parameters()]
    for _ in range(3):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            sum(((p - t) ** 2).sum() for p, t in zip(net.parameters(), targets)).backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(nets[0].head.weight, initial)  # the steps did move the weights
