"""NumPy implementations: the ufunc or expression a performance-aware user would write.

Signature ``f(x, p, out)``; results go to ``out`` (same dtype as ``x``) and intermediate steps
reuse ``out`` where NumPy allows, so the comparison with Numba is not an allocation benchmark.
``p`` is a scalar of x's dtype; NumPy 2 keeps Python-float constants at the array's dtype.
"""
import numpy as np

# the same saturation clamps as the Numba scalars (see scalars.py)
ISRU_CLAMP = 2.0**30
SOFTSIGN_CLAMP = 2.0**60


def _where(cond, a, b, out):
    np.copyto(out, b)
    np.copyto(out, a, where=cond)


def tanh(x, p, out):
    np.tanh(x, out=out)


def tanh_dx(x, p, out):
    np.tanh(x, out=out)
    np.multiply(out, out, out=out)
    np.subtract(1.0, out, out=out)


def tanh_dy(y, p, out):
    np.multiply(y, y, out=out)
    np.subtract(1.0, out, out=out)


def isru(x, a, out):
    lim = ISRU_CLAMP / np.sqrt(a)
    xc = np.clip(x, -lim, lim)
    np.multiply(xc, xc, out=out)
    out *= a
    out += 1.0
    np.sqrt(out, out=out)
    np.divide(xc, out, out=out)


def isru_dx(x, a, out):
    np.multiply(x, x, out=out)
    out *= a
    out += 1.0
    np.sqrt(out, out=out)
    np.reciprocal(out, out=out)
    np.power(out, 3, out=out)


def isru_dy(y, a, out):
    np.multiply(y, y, out=out)
    out *= -a
    out += 1.0
    np.power(out, 1.5, out=out)


def sigmoid(x, p, out):
    # exp(-|x|) never overflows; the two expressions are the same function.
    e = np.exp(-np.abs(x))
    np.add(1.0, e, out=out)
    np.reciprocal(out, out=out)
    np.multiply(out, e, out=out, where=x < 0)


def sigmoid_expr(x, p, out):
    # 1/(1 + np.exp(-x)) as usually written: fast, but exp overflows below -88.7 (float32), where
    # the answer becomes 0 instead of a tiny positive number
    with np.errstate(over="ignore"):
        np.exp(np.negative(x, out=out), out=out)
    np.add(1.0, out, out=out)
    np.reciprocal(out, out=out)


def sigmoid_dx(x, p, out):
    e = np.exp(-np.abs(x))
    np.add(1.0, e, out=out)
    np.multiply(out, out, out=out)
    np.divide(e, out, out=out)


def sigmoid_dy(y, p, out):
    np.subtract(1.0, y, out=out)
    out *= y


def softplus(x, p, out):
    # logaddexp raises "invalid value" for a NaN input (the NaN still propagates); silence that
    with np.errstate(invalid="ignore"):
        np.logaddexp(x.dtype.type(0), x, out=out)


def softplus_dx(x, p, out):
    sigmoid(x, p, out)


def softplus_dy(y, p, out):
    np.negative(y, out=out)
    np.expm1(out, out=out)
    np.negative(out, out=out)


def plus(x, p, out):
    np.add(x, p, out=out)


def minus(x, p, out):
    np.subtract(x, p, out=out)


def mult(x, p, out):
    np.multiply(x, p, out=out)


def div(x, p, out):
    np.divide(x, p, out=out)


def one(x, p, out):
    _where(np.isnan(x), x, x.dtype.type(1), out)


def const_p(x, p, out):
    _where(np.isnan(x), x, p, out)


def inv_p(x, p, out):
    _where(np.isnan(x), x, x.dtype.type(1) / p, out)


def sqrt(x, p, out):
    np.sqrt(x, out=out)


def sqrt_dx(x, p, out):
    np.sqrt(x, out=out)
    np.divide(0.5, out, out=out)


def sqrt_dy(y, p, out):
    np.divide(0.5, y, out=out)


def log(x, p, out):
    np.log(x, out=out)


def inverse(x, p, out):
    np.reciprocal(x, out=out)


def exp(x, p, out):
    np.exp(x, out=out)


def exp_neg(y, p, out):
    np.negative(y, out=out)
    np.exp(out, out=out)


def identity(y, p, out):
    np.copyto(out, y)


def relu(x, p, out):
    np.maximum(x, 0.0, out=out)


def relu_dx(x, p, out):
    np.copyto(out, x > 0)  # (NumPy 2 has no bool->float loop for dtype=float comparisons)
    _nan_through(x, out)


def _nan_through(x, out):
    np.copyto(out, x, where=np.isnan(x))


def leaky_relu(x, s, out):
    _where(x < 0, s * x, x, out)


def leaky_relu_dx(x, s, out):
    _where(x > 0, x.dtype.type(1), s, out)
    _nan_through(x, out)


def elu(x, a, out):
    _where(x > 0, x, a * np.expm1(np.minimum(x, 0.0)), out)


def elu_dx(x, a, out):
    _where(x > 0, x.dtype.type(1), a * np.exp(np.minimum(x, 0.0)), out)
    _nan_through(x, out)


def elu_dy(y, a, out):
    _where(y > 0, y.dtype.type(1), y + a, out)


def softsign(x, p, out):
    xc = np.clip(x, -SOFTSIGN_CLAMP, SOFTSIGN_CLAMP)
    np.abs(xc, out=out)
    out += 1.0
    np.divide(xc, out, out=out)


def softsign_dx(x, p, out):
    np.abs(x, out=out)
    out += 1.0
    np.multiply(out, out, out=out)
    np.reciprocal(out, out=out)


def softsign_dy(y, p, out):
    np.abs(y, out=out)
    np.subtract(1.0, out, out=out)
    np.multiply(out, out, out=out)


def hard_tanh(x, p, out):
    np.clip(x, -1.0, 1.0, out=out)


def hard_tanh_dx(x, p, out):
    np.copyto(out, np.abs(x) < 1.0)
    _nan_through(x, out)


def hard_sigmoid(x, p, out):
    np.multiply(x, 1.0 / 6.0, out=out)
    out += 0.5
    np.clip(out, 0.0, 1.0, out=out)


def hard_sigmoid_dx(x, p, out):
    _where(np.abs(x) < 3.0, x.dtype.type(1.0 / 6.0), x.dtype.type(0), out)
    _nan_through(x, out)


def hard_sigmoid_dy(y, p, out):
    _where((y > 0) & (y < 1), y.dtype.type(1.0 / 6.0), y.dtype.type(0), out)
    _nan_through(y, out)


def isru_sigmoid(x, a, out):
    isru(x * 0.5, a, out)
    out *= 0.5
    out += 0.5


def isru_sigmoid_dx(x, a, out):
    isru_dx(x * 0.5, a, out)
    out *= 0.25


def isru_sigmoid_dy(y, a, out):
    isru_dy(2.0 * y - 1.0, a, out)
    out *= 0.25


def isrlu(x, a, out):
    isru(x, a, out)
    np.copyto(out, x, where=x >= 0)


def isrlu_dx(x, a, out):
    isru_dx(x, a, out)
    np.copyto(out, x.dtype.type(1), where=x >= 0)


def isrlu_dy(y, a, out):
    isru_dy(np.minimum(y, 0.0), a, out)
