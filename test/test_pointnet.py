"""PointNet model: invariances, T-Net initialisation, regulariser, shapes, and a tiny overfit."""

import numpy as np
import pytest
import torch

from deep_perception.models.pointnet import (TNet, bn_momentum, build_pointnet, feature_transform_regulariser,
                                             set_bn_momentum)

torch.set_num_threads(1)  # small tensors: one thread is faster on a shared machine


@pytest.mark.parametrize("kind", ["cls", "seg"])
@pytest.mark.parametrize("channels,normals", [(3, False), (6, True), (4, False)])
def test_shapes(kind, channels, normals):
    model = build_pointnet(kind, 5, in_channels=channels, normal_channels=normals).eval()
    logits, trans = model(torch.randn(2, 128, channels))
    assert logits.shape == ((2, 5) if kind == "cls" else (2, 128, 5))
    assert trans.shape == (2, 64, 64)


def test_without_tnets_has_no_transform():
    model = build_pointnet("seg", 3, use_tnets=False).eval()
    logits, trans = model(torch.randn(2, 64, 3))
    assert logits.shape == (2, 64, 3) and trans is None
    assert not any("tnet" in name for name, _ in model.named_parameters())
    assert float(feature_transform_regulariser(trans)) == 0.0


def test_wrong_input_shape_is_rejected():
    model = build_pointnet("cls", 3).eval()
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        model(torch.randn(2, 6, 64))


@pytest.mark.parametrize("kind", ["cls", "seg"])
def test_permutation_invariance(kind):
    torch.manual_seed(0)
    model = build_pointnet(kind, 4, in_channels=6, normal_channels=True)
    model.train()
    for _ in range(3):  # give batch norm non-trivial running statistics
        model(torch.randn(4, 256, 6))
    model.eval()
    x = torch.randn(2, 256, 6)
    perm = torch.randperm(256)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x[:, perm])
    if kind == "cls":
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(a[:, perm], b, atol=1e-5, rtol=1e-5)


def test_tnet_is_identity_at_init():
    for k, c in ((3, 3), (64, 64)):
        net = TNet(c, k).train()
        a = net(torch.randn(4, c, 50))
        torch.testing.assert_close(a, torch.eye(k).expand(4, k, k))
    model = build_pointnet("cls", 3).eval()
    x = torch.randn(1, 32, 3)
    aligned, a = model.encoder.align_input(x)
    torch.testing.assert_close(aligned.transpose(1, 2), x)


def test_regulariser_on_known_matrices():
    eye = torch.eye(64).expand(3, 64, 64)
    assert float(feature_transform_regulariser(eye)) == 0.0
    q, _ = torch.linalg.qr(torch.randn(64, 64))
    assert float(feature_transform_regulariser(q.unsqueeze(0))) == pytest.approx(0.0, abs=1e-6)
    # A = 2I: I - 4I = -3I, squared Frobenius norm 9·64, weight 0.001
    assert float(feature_transform_regulariser(2 * torch.eye(64).unsqueeze(0))) == pytest.approx(0.576)
    # batch mean: [I, 2I] → (0 + 0.576) / 2
    batch = torch.stack([torch.eye(64), 2 * torch.eye(64)])
    assert float(feature_transform_regulariser(batch, weight=1.0)) == pytest.approx(288.0)


def test_bn_momentum_schedule():
    assert bn_momentum(0) == pytest.approx(0.5)
    assert bn_momentum(20) == pytest.approx(0.25)
    assert bn_momentum(1000) == pytest.approx(0.01)
    model = build_pointnet("cls", 3)
    set_bn_momentum(model, 0.3)
    moms = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)}
    assert moms == {0.3}


def test_tiny_overfit_really_learns():
    """Two-class toy: flat discs vs. vertical sticks; training loss must fall and accuracy reach 100%."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 8
    x = rng.normal(size=(n, 64, 3)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 0, :, 2] *= 0.02  # flat
    x[y == 1, :, :2] *= 0.02  # stick
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = build_pointnet("cls", 2, dropout_keep=1.0)
    set_bn_momentum(model, bn_momentum(0))  # the schedule's start: running stats follow quickly
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        model.train()
        logits, trans = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y) + feature_transform_regulariser(trans)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        acc = float((model(x)[0].argmax(1) == y).float().mean())
    assert losses[-1] < 0.5 * losses[0]
    assert acc == 1.0
