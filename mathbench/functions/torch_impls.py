"""PyTorch implementations (the optional ``peers`` extra), signature ``f(x, p, out)`` on CPU
tensors. torch is imported on first call, so the registry imports without it."""


def _t():
    import torch

    return torch


def tanh(x, p, out):
    _t().tanh(x, out=out)


def tanh_dx(x, p, out):
    t = _t()
    t.tanh(x, out=out)
    out.mul_(out).neg_().add_(1.0)


def tanh_dy(y, p, out):
    t = _t()
    t.mul(y, y, out=out)
    out.neg_().add_(1.0)


def isru(x, a, out):
    t = _t()
    lim = float(2.0**30 / float(a) ** 0.5)
    xc = t.clamp(x, -lim, lim)
    t.mul(xc, xc, out=out)
    out.mul_(float(a)).add_(1.0).rsqrt_().mul_(xc)


def isru_dx(x, a, out):
    t = _t()
    t.mul(x, x, out=out)
    out.mul_(float(a)).add_(1.0).rsqrt_().pow_(3)


def isru_dy(y, a, out):
    t = _t()
    t.mul(y, y, out=out)
    out.mul_(-float(a)).add_(1.0)
    out.mul_(t.sqrt(out))


def sigmoid(x, p, out):
    _t().sigmoid(x, out=out)


def sigmoid_dx(x, p, out):
    t = _t()
    t.sigmoid(x, out=out)
    out.mul_(1.0 - out)


def sigmoid_dy(y, p, out):
    t = _t()
    t.sub(1.0, y, out=out)
    out.mul_(y)


def softplus(x, p, out):
    # F.softplus returns x above its threshold (default 20): right in float32, but in float64
    # log1p(exp(-x)) is below half an ulp of x only from x ~ 36 on (at 20 the error is 2e-9).
    t = _t()
    out.copy_(t.nn.functional.softplus(x, threshold=20.0 if x.dtype == t.float32 else 40.0))


def softplus_dy(y, p, out):
    t = _t()
    t.neg(y, out=out)
    out.expm1_().neg_()
