"""ResNet: parameter counts, torchvision-compatible state_dict layout, in_channels, zero_init_residual."""

import pytest
import torch

from deep_perception.models.resnet import ARCHITECTURES, BasicBlock, Bottleneck, build_resnet, resnet18

EXPECTED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("arch", sorted(EXPECTED_PARAMS))
def test_parameter_counts(arch):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_resnet(arch, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[arch]


def _bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_layout(arch, num_classes=1000, in_channels=3):
    """Names and shapes of torchvision's resnet state_dict, written out from its documented structure
    (torchvision.models.resnet: conv1/bn1, layer1..4 of BasicBlock or Bottleneck, downsample.0/1, fc)."""
    bottleneck = arch in ("resnet50", "resnet101", "resnet152")
    blocks = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3],
              "resnet101": [3, 4, 23, 3], "resnet152": [3, 8, 36, 3]}[arch]
    exp = 4 if bottleneck else 1
    d = {"conv1.weight": (64, in_channels, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, count) in enumerate(zip([64, 128, 256, 512], blocks), start=1):
        for bi in range(count):
            p = f"layer{li}.{bi}"
            if bottleneck:
                d[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                d[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                d[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                d.update(_bn(f"{p}.bn1", planes), **_bn(f"{p}.bn2", planes), **_bn(f"{p}.bn3", planes * 4))
            else:
                d[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                d[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                d.update(_bn(f"{p}.bn1", planes), **_bn(f"{p}.bn2", planes))
            if bi == 0 and (li > 1 or inplanes != planes * exp):
                d[f"{p}.downsample.0.weight"] = (planes * exp, inplanes, 1, 1)
                d.update(_bn(f"{p}.downsample.1", planes * exp))
            inplanes = planes * exp
    d["fc.weight"] = (num_classes, 512 * exp)
    d["fc.bias"] = (num_classes,)
    return d


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_state_dict_loads_strict(arch):
    layout = torchvision_layout(arch)
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(7) if shape == () else torch.randn(shape, generator=gen))
             for k, shape in layout.items()}
    model = build_resnet(arch)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.fc.bias, state["fc.bias"])


def test_in_channels_and_classes():
    model = resnet18(num_classes=9, in_channels=1).eval()
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 9)
    assert torchvision_layout("resnet18", 9, 1) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_zero_init_residual_makes_blocks_identity():
    model = build_resnet("resnet50", zero_init_residual=True)
    assert all(not m.bn3.weight.detach().any() for m in model.modules() if isinstance(m, Bottleneck))
    model = resnet18(zero_init_residual=True).eval()
    block = model.layer1[0]
    assert isinstance(block, BasicBlock)
    x = torch.rand(1, 64, 8, 8)  # non-negative, like the ReLU output feeding it
    with torch.no_grad():
        assert torch.allclose(block(x), x)


def test_unknown_arch_rejected():
    with pytest.raises(ValueError, match="resnet18"):
        build_resnet("resnet19")
    assert set(ARCHITECTURES) == set(EXPECTED_PARAMS)


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    model = resnet18(num_classes=3, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(6, 1, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
