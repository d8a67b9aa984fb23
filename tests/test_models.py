"""Tests for bridge_jax.models: shapes, dtypes, densities, scale floor, critics, errors."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bridge_jax import models as M

B, DZ, W = 2, 3, 4  # tiny batch, latent size and width keep every test fast on CPU
SHAPES = [("mlp", (2,)), ("dcgan", (28, 28, 1)), ("dcgan", (28, 28, 3)),
          ("dcgan", (32, 32, 3)), ("dcgan", (64, 64, 3))]


@functools.cache
def _build(arch, shape, real_init=False, **kw):
    """Models and params. XLA:CPU compiles every initializer shape separately (~0.5 s each),
    so most tests use cheap numpy params of the right shapes (from jax.eval_shape)."""
    cfg = M.ModelConfig(arch=arch, latent_dim=DZ, width=W, **kw)
    models = M.make_models(cfg, shape)
    if real_init:
        return cfg, models, M.init_params(models, jax.random.key(0), shape, DZ)
    abstract = jax.eval_shape(lambda k: M.init_params(models, k, shape, DZ), jax.random.key(0))
    rng = np.random.default_rng(0)

    def fill(a):
        fan_in = max(1, math.prod(a.shape[:-1]))
        return jnp.asarray(rng.normal(size=a.shape) / math.sqrt(fan_in), a.dtype)

    return cfg, models, jax.tree_util.tree_map(fill, abstract)


def _inputs(shape, seed=1):
    kx, kz = jax.random.split(jax.random.key(seed))
    return jax.random.uniform(kx, (B, *shape)), jax.random.normal(kz, (B, DZ))


def _run(models, params, x, z):
    """Jitted (encoder(x), decoder(z), critic(x, z)): one compile is cheaper than eager."""
    def f(p, x, z):
        return (models.encoder.apply({"params": p["encoder"]}, x),
                models.decoder.apply({"params": p["decoder"]}, z),
                models.critic.apply({"params": p["critic"]}, x, z))
    return jax.jit(f)(params, x, z)


def test_init_params_mlp_counts_and_decoder_forward():
    _, models, params = _build("mlp", (2,), real_init=True)
    assert set(params) == {"encoder", "decoder", "critic"}
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == jnp.float32
    # encoder 2-4-4-(2*3); decoder 3-4-4-2 + scalar scale; critic x 2-4-4, z 3-4-4,
    # fusion 8-4-4, out 4-1.
    assert M.count_params(params["encoder"]) == 12 + 20 + 30
    assert M.count_params(params["decoder"]) == 16 + 20 + 10 + 1
    assert M.count_params(params["critic"]) == (12 + 20) + (16 + 20) + (36 + 20) + 5
    x, z = _inputs((2,))
    (mean, log_std), out, logits = _run(models, params, x, z)
    np.testing.assert_allclose(out.log_scale, math.log(0.1), rtol=1e-6)  # default init
    # decoder loc = linear(relu(relu(z W0 + b0) W1 + b1)) by hand
    p = jax.tree_util.tree_map(np.asarray, params["decoder"])
    h = np.asarray(z, np.float64)
    for layer in ("Dense_0", "Dense_1"):
        h = np.maximum(h @ p["_MLP_0"][layer]["kernel"] + p["_MLP_0"][layer]["bias"], 0.0)
    ref = h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    np.testing.assert_allclose(out.loc, ref, rtol=1e-5, atol=1e-6)
    assert float(jnp.std(logits)) > 0.0 and float(jnp.std(mean)) > 0.0


def test_dcgan_decoder_real_init():
    shape = (28, 28, 1)
    cfg = M.ModelConfig(arch="dcgan", latent_dim=DZ, width=W, init_log_scale=-1.0)
    decoder = M.make_models(cfg, shape).decoder
    z = _inputs(shape)[1]
    params = decoder.init(jax.random.key(0), z)["params"]
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == jnp.float32
    out = decoder.apply({"params": params}, z)
    np.testing.assert_allclose(out.log_scale, -1.0, rtol=1e-6)
    assert 0.0 < float(out.loc.min()) < float(out.loc.max()) < 1.0


@pytest.mark.parametrize("arch,shape", SHAPES)
def test_output_shapes_and_dtypes(arch, shape):
    _, models, params = _build(arch, shape)
    x, z = _inputs(shape)
    (mean, log_std), out, logits = _run(models, params, x, z)
    chex.assert_shape([mean, log_std], (B, DZ))
    chex.assert_type([mean, log_std], jnp.float32)
    chex.assert_shape(out.loc, (B, *shape))
    chex.assert_shape(out.log_scale, ())
    chex.assert_type([out.loc, out.log_scale], jnp.float32)
    if arch == "dcgan":  # gaussian image loc goes through a sigmoid
        assert float(out.loc.min()) > 0.0 and float(out.loc.max()) < 1.0
    chex.assert_shape(logits, (B,))
    chex.assert_type(logits, jnp.float32)
    assert isinstance(models.critic, M.JointCritic)
    assert np.all(np.isfinite(logits)) and float(jnp.abs(logits[0] - logits[1])) > 0.0


@pytest.mark.parametrize("upsample", ["subpixel", "transpose"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_upsample_modes_reach_target_shape(upsample, shape):
    _, models, params = _build("dcgan", shape, upsample=upsample, likelihood="bernoulli")
    out = models.decoder.apply({"params": params["decoder"]}, _inputs(shape)[1])
    chex.assert_shape(out.loc, (B, *shape))
    assert out.log_scale is None
    assert "log_scale_raw" not in params["decoder"]
    conv_kinds = {k.split("_")[0] for up in params["decoder"] if up.startswith("_Upsample")
                  for k in params["decoder"][up]}
    assert conv_kinds == ({"Conv"} if upsample == "subpixel" else {"ConvTranspose"})


def test_depth_to_space_matches_numpy_and_inverts_space_to_depth():
    r, c = 2, 3
    x = np.arange(2 * 3 * 4 * r * r * c, dtype=np.float32).reshape(2, 3, 4, r * r * c)
    ref = np.zeros((2, 3 * r, 4 * r, c), np.float32)
    for h in range(3):
        for w in range(4):
            for i in range(r):
                for j in range(r):
                    k = (i * r + j) * c
                    ref[:, h * r + i, w * r + j, :] = x[:, h, w, k:k + c]
    y = np.asarray(M.depth_to_space(jnp.asarray(x), r))
    np.testing.assert_array_equal(y, ref)

    def space_to_depth(a, block):
        b, hh, ww, cc = a.shape
        a = a.reshape(b, hh // block, block, ww // block, block, cc).transpose(0, 1, 3, 2, 4, 5)
        return a.reshape(b, hh // block, ww // block, block * block * cc)

    np.testing.assert_array_equal(space_to_depth(y, r), x)
    with pytest.raises(ValueError, match="divisible"):
        M.depth_to_space(jnp.zeros((1, 2, 2, 3)), 2)


def test_gaussian_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    loc = rng.normal(size=(3, 4, 5)).astype(np.float32)
    log_scale = rng.normal(scale=0.5, size=(4, 5)).astype(np.float32)  # broadcast over batch
    ref = stats.norm.logpdf(x, loc, np.exp(log_scale)).reshape(3, -1).sum(1)
    got = M.gaussian_log_prob(x, loc, log_scale)
    chex.assert_shape(got, (3,))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    ref_scalar = stats.norm.logpdf(x, loc, np.exp(-1.5)).reshape(3, -1).sum(1)
    np.testing.assert_allclose(M.gaussian_log_prob(x, loc, -1.5), ref_scalar, rtol=1e-5)


def test_bernoulli_log_prob_hand_formula_and_extremes():
    x = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 1.0]], np.float32)
    logits = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.7]], np.float32)
    sig = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    ref = (x * np.log(sig) + (1 - x) * np.log(1 - sig)).sum(1)
    out = M.DecoderOutput(jnp.asarray(logits), None)
    np.testing.assert_allclose(M.decoder_log_prob(out, x, "bernoulli"), ref, rtol=1e-6)
    # logits of +-100: log sigmoid(100) ~ -3.7e-44 ~ 0, log sigmoid(-100) = -100.
    xs = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    big = np.array([[100.0, -100.0], [-100.0, 100.0]], np.float32)
    got = M.bernoulli_log_prob(xs, big)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, -200.0], atol=1e-5)


def test_standard_normal_log_prob_known_values():
    z = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]])
    expect = [-1.5 * math.log(2 * math.pi), -2.5 - 1.5 * math.log(2 * math.pi)]
    np.testing.assert_allclose(M.standard_normal_log_prob(z), expect, rtol=1e-6)
    np.testing.assert_allclose(M.standard_normal_log_prob(z), [-2.7568156, -5.2568156],
                               rtol=1e-6)


def test_negative_elbo_terms_hand_case():
    mean, log_std = jnp.array([[0.5]]), jnp.array([[math.log(2.0)]])
    z, x = jnp.array([[1.5]]), jnp.array([[0.0]])
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    log_q = -0.5 * 0.5**2 - math.log(2.0) - half_log_2pi  # (1.5 - 0.5) / 2 = 0.5
    log_pz = -0.5 * 1.5**2 - half_log_2pi
    log_px = -0.5 * (0.0 - 1.0) ** 2 / 0.25 - math.log(0.5) - half_log_2pi  # sigma = 0.5
    out = M.DecoderOutput(jnp.array([[1.0]]), jnp.array(math.log(0.5)))
    got = M.negative_elbo_terms(mean, log_std, z, out, x, "gaussian")
    np.testing.assert_allclose(got, [log_q - log_pz - log_px], rtol=1e-6)
    # = 3 - 2 log 2 + 0.5 log 2 pi
    np.testing.assert_allclose(got, [2.5326446], rtol=1e-6)
    # bernoulli: -log p(x=1 | logit 0) = log 2
    outb = M.DecoderOutput(jnp.array([[0.0]]), None)
    gotb = M.negative_elbo_terms(mean, log_std, z, outb, jnp.array([[1.0]]), "bernoulli")
    np.testing.assert_allclose(gotb, [log_q - log_pz + math.log(2.0)], rtol=1e-6)


def test_samplers_and_means():
    out = M.DecoderOutput(jnp.array([[1.0, -2.0]]), jnp.array([0.0, math.log(3.0)]))
    eps = jnp.array([[0.5, 1.0]])
    np.testing.assert_allclose(M.decoder_sample(out, eps, "gaussian"), [[1.5, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(M.decoder_mean(out, "gaussian"), [[1.0, -2.0]])
    sig = 1 / (1 + np.exp(-np.array([1.0, -2.0])))
    np.testing.assert_allclose(M.decoder_sample(out, eps, "bernoulli"), [sig], rtol=1e-6)
    np.testing.assert_allclose(M.decoder_mean(out, "bernoulli"), [sig], rtol=1e-6)
    np.testing.assert_allclose(M.encoder_sample(jnp.array([1.0]), jnp.array([math.log(2.0)]),
                                                jnp.array([-1.0])), [-1.0], rtol=1e-6)
    # reparameterised: d/d log_scale sum(loc + e^s eps) = e^s * eps
    g = jax.grad(lambda s: M.decoder_sample(out._replace(log_scale=s), eps, "gaussian").sum())(
        out.log_scale)
    np.testing.assert_allclose(g, [0.5, 3.0], rtol=1e-6)


@pytest.mark.parametrize("scale", ["scalar", "per_pixel"])
def test_scale_param_shape_and_floor(scale):
    shape = (2,)
    lo = math.log(1e-3)
    _, models, params = _build("mlp", shape, real_init=True, scale=scale, init_log_scale=-0.5,
                                 min_log_scale=lo)
    raw = params["decoder"]["log_scale_raw"]
    chex.assert_shape(raw, () if scale == "scalar" else shape)
    z = _inputs(shape)[1]
    out = models.decoder.apply({"params": params["decoder"]}, z)
    np.testing.assert_allclose(out.log_scale, np.full(raw.shape, -0.5), rtol=1e-6)
    for value, expect in [(-1e4, lo), (-50.0, lo), (30.0, 30.0)]:
        p = {**params["decoder"], "log_scale_raw": jnp.full(raw.shape, value)}
        ls = models.decoder.apply({"params": p}, z).log_scale
        assert np.all(np.asarray(ls) >= lo)
        np.testing.assert_allclose(ls, np.full(raw.shape, expect), rtol=1e-5)


def test_per_pixel_scale_image_shape():
    shape = (28, 28, 1)
    _, models, params = _build("dcgan", shape, scale="per_pixel")
    chex.assert_shape(params["decoder"]["log_scale_raw"], shape)
    out = models.decoder.apply({"params": params["decoder"]}, _inputs(shape)[1])
    x = _inputs(shape, seed=5)[0]
    chex.assert_shape(M.decoder_log_prob(out, x, "gaussian"), (B,))


@pytest.mark.parametrize("arch,shape", [SHAPES[0], SHAPES[1]])
def test_joint_critic_depends_on_x_and_z_xcritic_ignores_z(arch, shape):
    _, models, params = _build(arch, shape)
    x, z = _inputs(shape)
    x2, z2 = _inputs(shape, seed=7)
    pc = {"params": params["critic"]}
    d = models.critic.apply(pc, x, z)
    assert float(jnp.max(jnp.abs(d - models.critic.apply(pc, x, z2)))) > 1e-6
    assert float(jnp.max(jnp.abs(d - models.critic.apply(pc, x2, z)))) > 1e-6

    _, xmodels, xparams = _build(arch, shape, critic_input="x")
    assert isinstance(xmodels.critic, M.XCritic)
    pxc = {"params": xparams["critic"]}
    dx = xmodels.critic.apply(pxc, x, z)
    chex.assert_shape(dx, (B,))
    np.testing.assert_array_equal(dx, xmodels.critic.apply(pxc, x, z2))
    np.testing.assert_array_equal(dx, xmodels.critic.apply(pxc, x))
    assert float(jnp.max(jnp.abs(dx - xmodels.critic.apply(pxc, x2, z)))) > 1e-6


@pytest.mark.parametrize("critic_input", ["joint", "x"])
def test_bfloat16_compute_float32_params_and_outputs(critic_input):
    shape = (28, 28, 1)
    cfg, models, params = _build("dcgan", shape, dtype="bfloat16", critic_input=critic_input)
    assert cfg.dtype == jnp.bfloat16
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == jnp.float32
    (mean, log_std), out, logits = _run(models, params, *_inputs(shape))
    chex.assert_type([logits, mean, log_std, out.loc, out.log_scale], jnp.float32)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(out.loc))
    _, _, f32_logits = _run(*_build("dcgan", shape, critic_input=critic_input)[1:],
                            *_inputs(shape))
    np.testing.assert_allclose(logits, f32_logits, rtol=0.1, atol=0.1)  # same params


def test_from_config():
    ml_collections = pytest.importorskip("ml_collections")
    cfg = M.ModelConfig.from_config(ml_collections.ConfigDict(
        {"arch": "dcgan", "latent_dim": 8, "width": 16, "scale": "per_pixel",
         "dtype": "bfloat16"}))
    assert (cfg.arch, cfg.latent_dim, cfg.width, cfg.depth) == ("dcgan", 8, 16, 2)
    assert cfg.scale == "per_pixel" and cfg.dtype == jnp.bfloat16
    assert M.ModelConfig.from_config({"arch": "mlp", "latent_dim": 2, "width": 8}).depth == 2
    with pytest.raises(ValueError, match="unknown model config keys"):
        M.ModelConfig.from_config({"arch": "mlp", "latent_dim": 2, "width": 8, "wdith": 3})


@pytest.mark.parametrize("field,value,allowed", [
    ("arch", "resnet", "mlp, dcgan"),
    ("likelihood", "laplace", "gaussian, bernoulli"),
    ("scale", "diag", "scalar, per_pixel"),
    ("upsample", "nearest", "subpixel, transpose"),
    ("critic_input", "z", "joint, x"),
])
def test_bad_names_raise(field, value, allowed):
    kw = {"arch": "mlp", "latent_dim": 2, "width": 8, field: value}
    with pytest.raises(ValueError, match=f"unknown {field} '{value}'.*{allowed}"):
        M.ModelConfig(**kw)


def test_bad_values_and_shapes_raise():
    with pytest.raises(ValueError, match="latent_dim"):
        M.ModelConfig(arch="mlp", latent_dim=0, width=8)
    with pytest.raises(ValueError, match="must exceed min_log_scale"):
        M.ModelConfig(arch="mlp", latent_dim=2, width=8, init_log_scale=-9.0)
    with pytest.raises(ValueError, match="floating"):
        M.ModelConfig(arch="mlp", latent_dim=2, width=8, dtype="int32")
    cfg = M.ModelConfig(arch="dcgan", latent_dim=2, width=8)
    for bad in [(30, 30, 3), (28, 32, 3), (28, 28), (2,), (32, 32, 0)]:
        with pytest.raises(ValueError, match="unsupported dcgan example_shape"):
            M.make_models(cfg, bad)
    with pytest.raises(ValueError, match="unsupported mlp example_shape"):
        M.make_models(M.ModelConfig(arch="mlp", latent_dim=2, width=8), (0,))
    models = M.make_models(cfg, (32, 32, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        M.init_params(models, jax.random.key(0), (32, 32, 3), 5)
    out = M.DecoderOutput(jnp.zeros((1, 2)), None)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        M.decoder_log_prob(out, jnp.zeros((1, 2)), "poisson")
    with pytest.raises(ValueError, match="needs DecoderOutput.log_scale"):
        M.decoder_log_prob(out, jnp.zeros((1, 2)), "gaussian")
