"""PointNet (Qi et al., CVPR 2017) for classification and per-point segmentation.

Faithful to the paper and the authors' TensorFlow code (charlesq34/pointnet):

* input T-Net (3×3) and feature T-Net (64×64): shared MLP (64, 128, 1024) → max pool → FC (512, 256)
  → K×K matrix; the last layer starts at zero weights with an identity bias, so A = I at init;
* shared MLPs (64, 64) and (64, 128, 1024) as 1-D convolutions with batch norm and ReLU, then max pool;
* classification head FC 512 → 256 → k with batch norm and dropout (keep 0.7) after each hidden layer;
* segmentation head on [per-point 64-d features, global 1024-d] → 512 → 256 → 128 → m per point;
* feature-transform regulariser ``weight · ‖I − A Aᵀ‖²_F`` (weight 0.001, mean over the batch);
* batch-norm momentum schedule (``bn_momentum``), as the authors' ``bn_decay``.

Inputs are ``(B, N, C)`` tensors, point-major as stored on disk: the first 3 channels are xyz; when
``normal_channels`` is set the next 3 are unit normals, rotated by the input transform as xyz are; any
further channels (e.g. intensity) pass untransformed. ``use_tnets=False`` drops both T-Nets.
"""

import math

import torch
from torch import nn


def _conv_bn(c_in, c_out):
    return nn.Sequential(nn.Conv1d(c_in, c_out, 1), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


def _fc_bn(c_in, c_out):
    return nn.Sequential(nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


class TNet(nn.Module):
    """Predicts a K×K alignment matrix from a (B, C, N) feature map; identity at initialisation."""

    def __init__(self, c_in, k):
        super().__init__()
        self.k = k
        self.mlp = nn.Sequential(_conv_bn(c_in, 64), _conv_bn(64, 128), _conv_bn(128, 1024))
        self.fc = nn.Sequential(_fc_bn(1024, 512), _fc_bn(512, 256))
        self.out = nn.Linear(256, k * k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(k).flatten())

    def forward(self, x):
        g = self.mlp(x).max(dim=2).values
        return self.out(self.fc(g)).view(-1, self.k, self.k)


class PointNetEncoder(nn.Module):
    """Shared part of both networks: transforms, shared MLPs, max pool.

    Returns ``(global_feature (B,1024), point_features (B,64,N), feature_transform or None)``.
    """

    def __init__(self, in_channels=3, normal_channels=False, use_tnets=True):
        super().__init__()
        if in_channels < 3 or (normal_channels and in_channels < 6):
            raise ValueError(f"in_channels={in_channels} too small (xyz{'+normals' if normal_channels else ''})")
        self.in_channels = in_channels
        self.normal_channels = normal_channels
        self.use_tnets = use_tnets
        self.input_tnet = TNet(3, 3) if use_tnets else None
        self.mlp1 = nn.Sequential(_conv_bn(in_channels, 64), _conv_bn(64, 64))
        self.feature_tnet = TNet(64, 64) if use_tnets else None
        # The authors' last 1024 layer keeps its ReLU (tf_util.conv2d default), unlike some ports.
        self.mlp2 = nn.Sequential(_conv_bn(64, 64), _conv_bn(64, 128), _conv_bn(128, 1024))

    def align_input(self, points):
        """Apply the input transform to xyz (and normals); ``points`` (B, N, C) → ((B, C, N), A or None)."""
        if self.input_tnet is None:
            return points.transpose(1, 2), None
        a = self.input_tnet(points[:, :, :3].transpose(1, 2))
        parts = [torch.bmm(points[:, :, :3], a)]
        rest = 3
        if self.normal_channels:
            parts.append(torch.bmm(points[:, :, 3:6], a))
            rest = 6
        if points.shape[2] > rest:
            parts.append(points[:, :, rest:])
        return torch.cat(parts, dim=2).transpose(1, 2), a

    def forward(self, points):
        if points.dim() != 3 or points.shape[2] != self.in_channels:
            raise ValueError(f"expected (B, N, {self.in_channels}) points, got {tuple(points.shape)}")
        x, _ = self.align_input(points)
        x = self.mlp1(x)
        trans = None
        if self.feature_tnet is not None:
            trans = self.feature_tnet(x)
            x = torch.bmm(trans.transpose(1, 2), x)  # (B,64,N): per point f' = f·A, as the authors
        point_features = x
        global_feature = self.mlp2(x).max(dim=2).values
        return global_feature, point_features, trans


class PointNetCls(nn.Module):
    """Classification network: ``forward(points (B,N,C))`` → ``(logits (B,k), feature_transform)``."""

    def __init__(self, num_classes, in_channels=3, normal_channels=False, use_tnets=True, dropout_keep=0.7):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = PointNetEncoder(in_channels, normal_channels, use_tnets)
        self.head = nn.Sequential(
            _fc_bn(1024, 512), nn.Dropout(1 - dropout_keep),
            _fc_bn(512, 256), nn.Dropout(1 - dropout_keep),
            nn.Linear(256, num_classes))

    def forward(self, points):
        g, _, trans = self.encoder(points)
        return self.head(g), trans


class PointNetSeg(nn.Module):
    """Segmentation network: ``forward(points (B,N,C))`` → ``(logits (B,N,m), feature_transform)``."""

    def __init__(self, num_classes, in_channels=3, normal_channels=False, use_tnets=True):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = PointNetEncoder(in_channels, normal_channels, use_tnets)
        self.head = nn.Sequential(_conv_bn(64 + 1024, 512), _conv_bn(512, 256), _conv_bn(256, 128),
                                  nn.Conv1d(128, num_classes, 1))

    def forward(self, points):
        g, f, trans = self.encoder(points)
        n = f.shape[2]
        x = torch.cat([f, g.unsqueeze(2).expand(-1, -1, n)], dim=1)
        return self.head(x).transpose(1, 2), trans


def feature_transform_regulariser(trans, weight=0.001):
    """``weight · ‖I − A Aᵀ‖²_F`` averaged over the batch (0 when ``trans`` is None)."""
    if trans is None:
        return torch.zeros(())
    k = trans.shape[1]
    eye = torch.eye(k, dtype=trans.dtype, device=trans.device)
    diff = eye - torch.bmm(trans, trans.transpose(1, 2))
    return weight * diff.pow(2).sum(dim=(1, 2)).mean()


def bn_momentum(epoch, init=0.5, decay=0.5, decay_epochs=20, minimum=0.01):
    """PyTorch BN momentum at ``epoch``: the authors' ``1 − min(0.99, 1 − 0.5·0.5^(t/T))`` per epoch."""
    return max(minimum, init * math.pow(decay, epoch / decay_epochs))


def set_bn_momentum(model, momentum):
    """Set the momentum of every batch-norm layer of ``model``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def build_pointnet(kind, num_classes, in_channels=3, normal_channels=False, use_tnets=True, dropout_keep=0.7):
    """``kind`` 'cls' or 'seg' → a freshly initialised network."""
    if kind == "cls":
        return PointNetCls(num_classes, in_channels, normal_channels, use_tnets, dropout_keep)
    if kind == "seg":
        return PointNetSeg(num_classes, in_channels, normal_channels, use_tnets)
    raise ValueError(f"unknown PointNet kind {kind!r} (cls or seg)")
