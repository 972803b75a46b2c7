"""An inference-only PointNet built from a trained eager one: same outputs, fewer and larger matmuls.

What changes (all exact up to float rounding):

* every batch norm (eval statistics) is folded into the preceding 1-D conv / linear layer;
* points are kept point-major ``(B, N, C)`` and every shared MLP layer is one ``addmm`` on
  ``(B·N, C_in) × (C_in, C_out)`` with an in-place ReLU, instead of conv1d + BN + ReLU passes;
* the seg head's first layer on ``[f, g]`` is split: the global part ``W_g·g + b`` is computed once
  per cloud and broadcast as a bias, so the per-point work is only ``W_f·f`` (64 → 512);
* the input transform is folded into the first layer's weights per cloud (``(x·A)·W = x·(A·W)``);
* the feature transform is folded into the next layer's weights per cloud (``(x·A)·W = x·(A·W)``);
* the 1024-wide layers that feed a max pool take the max of ``x·W`` first and add the bias and
  ReLU afterwards (``max_i relu(x_i·W + b) = relu(max_i(x_i·W) + b)``): two passes over B·N·1024 saved;
  they are computed channel-major (``W·xᵀ``, 1024 × N) so the max runs over contiguous memory;
* dropout disappears (eval), autograd is off (``torch.inference_mode`` at the call site).
"""

import torch
from torch import nn

from deep_perception.models.pointnet import PointNetCls, PointNetSeg


def fold_bn(weight, bias, bn):
    """(W, b) of a linear/1×1-conv layer followed by eval-mode BN → (W', b') of one linear layer."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is None:
        return w.float(), b.float()
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return (w * scale[:, None]).float(), ((b - bn.running_mean.double()) * scale + bn.bias.detach().double()).float()


def _layer(seq):
    """(W, b) folded from a Sequential(conv/linear, BN, ReLU) block, or a bare conv/linear."""
    if isinstance(seq, (nn.Conv1d, nn.Linear)):
        return fold_bn(seq.weight, seq.bias, None)
    return fold_bn(seq[0].weight, seq[0].bias, seq[1])


class _Dense(nn.Module):
    """A folded layer stored as (C_in, C_out) for ``addmm``; ``relu`` applied in place."""

    def __init__(self, wb, relu=True):
        super().__init__()
        w, b = wb
        self.register_buffer("wt", w.t().contiguous())
        self.register_buffer("b", b.contiguous())
        self.relu = relu

    def forward(self, x):
        y = torch.addmm(self.b, x, self.wt)
        return y.relu_() if self.relu else y


def _mlp(layers):
    return nn.ModuleList(_Dense(_layer(s)) for s in layers)


def _run(mlp, x):
    for layer in mlp:
        x = layer(x)
    return x


def _run_max(mlp, x, b, n):
    """``_run`` followed by a max over each cloud's points, the last layer's bias/ReLU after the max."""
    for layer in mlp[:-1]:
        x = layer(x)
    last = mlp[-1]
    w = last.wt.t()  # (C_out, C_in): channel-major output, the max then reduces contiguous rows
    if b == 1:
        g = torch.mm(w, x.t()).amax(dim=1).unsqueeze(0)
    else:
        g = torch.bmm(w.unsqueeze(0).expand(b, -1, -1), x.view(b, n, -1).transpose(1, 2)).amax(dim=2)
    g = g.add_(last.b)
    return g.relu_() if last.relu else g


class _FastTNet(nn.Module):
    def __init__(self, tnet):
        super().__init__()
        self.k = tnet.k
        self.mlp = _mlp(tnet.mlp)
        self.fc = _mlp(tnet.fc)
        self.out = _Dense(_layer(tnet.out), relu=False)

    def forward(self, x, b, n):
        """``x`` (B·N, C) → (B, k, k)."""
        g = _run_max(self.mlp, x, b, n)
        return self.out(_run(self.fc, g)).view(b, self.k, self.k)


class FastPointNet(nn.Module):
    """Inference twin of a trained ``PointNetCls`` / ``PointNetSeg``; ``forward(points (B,N,C))`` returns
    the same logits as the eager model in eval mode (cls (B,k), seg (B,N,m))."""

    def __init__(self, model):
        super().__init__()
        if not isinstance(model, (PointNetCls, PointNetSeg)):
            raise TypeError(f"FastPointNet needs a PointNetCls or PointNetSeg, got {type(model).__name__}")
        model = model.eval()
        enc = model.encoder
        self.kind = "seg" if isinstance(model, PointNetSeg) else "cls"
        self.in_channels = enc.in_channels
        self.normal_channels = enc.normal_channels
        self.input_tnet = _FastTNet(enc.input_tnet) if enc.input_tnet is not None else None
        self.feature_tnet = _FastTNet(enc.feature_tnet) if enc.feature_tnet is not None else None
        w1, b1 = _layer(enc.mlp1[0])
        self.register_buffer("w1t", w1.t().contiguous())  # (C_in, 64), transformed per cloud
        self.register_buffer("b1", b1)
        self.mlp1_rest = _mlp(enc.mlp1[1:])
        self.mlp2 = _mlp(enc.mlp2)
        if self.kind == "cls":
            self.head = nn.ModuleList([_Dense(_layer(model.head[0])), _Dense(_layer(model.head[2])),
                                       _Dense(_layer(model.head[4]), relu=False)])
        else:
            w, b = _layer(model.head[0])
            self.register_buffer("seg_wf", w[:, :64].t().contiguous())
            self.register_buffer("seg_wg", w[:, 64:].t().contiguous())
            self.register_buffer("seg_b", b)
            self.head = nn.ModuleList([_Dense(_layer(model.head[1])), _Dense(_layer(model.head[2])),
                                       _Dense(_layer(model.head[3]), relu=False)])

    def _first_weights(self, points, b, n):
        """Per-cloud first-layer weights (B, C_in, 64) with the input transform folded in."""
        w = self.w1t.unsqueeze(0).expand(b, -1, -1)
        if self.input_tnet is None:
            return w
        a = self.input_tnet(points[:, :, :3].reshape(b * n, 3), b, n)  # (B,3,3)
        blocks = [torch.bmm(a, w[:, 0:3])]
        rest = 3
        if self.normal_channels:
            blocks.append(torch.bmm(a, w[:, 3:6]))
            rest = 6
        if self.in_channels > rest:
            blocks.append(w[:, rest:])
        return torch.cat(blocks, dim=1)

    def forward(self, points):
        b, n, c = points.shape
        if c != self.in_channels:
            raise ValueError(f"expected (B, N, {self.in_channels}) points, got {tuple(points.shape)}")
        w1 = self._first_weights(points, b, n)
        x = torch.baddbmm(self.b1, points, w1).relu_().view(b * n, -1)
        f = _run(self.mlp1_rest, x)  # per-point features before the feature transform
        a = self.feature_tnet(f, b, n) if self.feature_tnet is not None else None
        first = self.mlp2[0]
        w = first.wt if a is None else torch.matmul(a, first.wt)  # A folded into the weights per cloud
        x = torch.baddbmm(first.b, f.view(b, n, -1), w.expand(b, -1, -1)).relu_().view(b * n, -1)
        g = _run_max(self.mlp2[1:], x, b, n)
        if self.kind == "cls":
            return _run(self.head, g)
        gb = torch.addmm(self.seg_b, g, self.seg_wg)  # (B, 512): the global half, once per cloud
        wf = self.seg_wf if a is None else torch.matmul(a, self.seg_wf)
        h = torch.baddbmm(gb.unsqueeze(1), f.view(b, n, -1), wf.expand(b, -1, -1))
        y = _run(self.head, h.relu_().view(b * n, -1))
        return y.view(b, n, -1)
