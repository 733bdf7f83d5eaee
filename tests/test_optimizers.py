"""The dense optimizers follow MXNet 1.x's definitions (SageMaker's Object2Vec): each is checked
against steps computed by hand from MXNet's formulas (training/dense_optim.py quotes them)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from object2vec import Object2Vec
from object2vec.training.dense_optim import dense_optimizer

W0 = [0.5, -0.3, 0.02]
# a small gradient, where eps placement matters, and two ordinary ones; the second step's gradient differs
GRADS = ([1e-4, 0.2, -0.7], [-2e-4, 0.1, 0.4])


def run_steps(name: str, lr: float, wd: float, steps: int = 2) -> list[float]:
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    opt = dense_optimizer(name, [w], lr, wd)
    for g in GRADS[:steps]:
        opt.zero_grad()
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach().tolist()


def by_hand(name: str, lr: float, wd: float) -> list[float]:
    """MXNet's update rules, written out per element in plain Python floats."""
    out = []
    for i, w in enumerate(W0):
        m = v = h = n = acc_g = acc_delta = 0.0
        for t, grads in enumerate(GRADS, start=1):
            g = grads[i]
            if name == "adam":  # g += wd*w; lr_t = lr*sqrt(1-b2^t)/(1-b1^t); w -= lr_t*m/(sqrt(v)+1e-8)
                g += wd * w
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * g * g
                w -= lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (math.sqrt(v) + 1e-8)
            elif name == "sgd":  # w = (1 - lr*wd)*w - lr*g
                w = (1 - lr * wd) * w - lr * g
            elif name == "adagrad":  # h += g^2; w -= lr*(g/sqrt(h + 1e-7) + wd*w)
                h += g * g
                w -= lr * (g / math.sqrt(h + 1e-7) + wd * w)
            elif name == "rmsprop":  # g += wd*w; n = 0.9n + 0.1g^2; w -= lr*g/sqrt(n + 1e-8)
                g += wd * w
                n = 0.9 * n + 0.1 * g * g
                w -= lr * g / math.sqrt(n + 1e-8)
            elif name == "adadelta":  # no learning rate; eps 1e-5 in both roots; w -= delta + wd*w
                acc_g = 0.9 * acc_g + 0.1 * g * g
                delta = math.sqrt(acc_delta + 1e-5) / math.sqrt(acc_g + 1e-5) * g
                acc_delta = 0.9 * acc_delta + 0.1 * delta * delta
                w -= delta + wd * w
        out.append(w)
    return out


@pytest.mark.parametrize("name", ["adam", "sgd", "adagrad", "rmsprop", "adadelta"])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_two_steps_match_mxnets_formulas_computed_by_hand(name, wd):
    assert run_steps(name, lr=0.01, wd=wd) == pytest.approx(by_hand(name, lr=0.01, wd=wd), rel=1e-9, abs=1e-12)


def test_adam_puts_eps_where_mxnet_does_not_where_pytorch_does():
    """A first step on a gradient of 1e-8 (m = 1e-9, sqrt(v) = 3.16e-10): MXNet moves
    lr*sqrt(1-0.999)/(1-0.9) * m/(sqrt(v) + 1e-8) = 3.07e-4; PyTorch's Adam would move
    lr/(1-0.9) * m/(sqrt(v)/sqrt(1-0.999) + 1e-8) = 5e-3."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = dense_optimizer("adam", [w], 0.01, 0.0)
    w.grad = torch.tensor([1e-8], dtype=torch.float64)
    opt.step()
    assert w.item() == pytest.approx(-0.01 * math.sqrt(0.001) / 0.1 * 1e-9 / (math.sqrt(1e-19) + 1e-8))
    assert w.item() == pytest.approx(-3.0653e-4, rel=1e-4)


def test_adagrads_eps_is_inside_the_square_root():
    """A gradient of 1e-4: MXNet's step is lr*1e-4/sqrt(1e-8 + 1e-7) = 0.30*lr (torch's: lr)."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = dense_optimizer("adagrad", [w], 0.1, 0.0)
    w.grad = torch.tensor([1e-4], dtype=torch.float64)
    opt.step()
    assert w.item() == pytest.approx(-0.1 * 1e-4 / math.sqrt(1.1e-7))


def test_adadelta_ignores_the_learning_rate():
    assert run_steps("adadelta", lr=0.0004, wd=0.0) == run_steps("adadelta", lr=1.0, wd=0.0)


def test_optimizer_state_survives_a_state_dict_round_trip():
    """A resumed run continues with the same history (and Adam with the same step count behind eps)."""
    for name in ("adam", "adagrad", "rmsprop", "adadelta"):
        torch.manual_seed(0)
        a, b = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(4))
        b.data.copy_(a.data)
        opt_a, opt_b = dense_optimizer(name, [a], 0.01, 0.0), dense_optimizer(name, [b], 0.01, 0.0)
        for step in range(3):
            for p, opt in ((a, opt_a), (b, opt_b)):
                p.grad = torch.full((4,), 0.1 * (step + 1))
                opt.step()
            if step == 0:
                opt_b = dense_optimizer(name, [b], 0.01, 0.0)
                opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as from a checkpoint file
        torch.testing.assert_close(a, b, msg=name)


def test_a_sagemaker_adadelta_job_with_the_default_learning_rate_learns(tiny, records):
    """SageMaker's default learning_rate is 0.0004; MXNet's AdaDelta does not use it, so it trains."""
    model = Object2Vec(**{**tiny, "optimizer": "adadelta", "learning_rate": 0.0004, "epochs": 8, "mini_batch_size": 8}).fit(
        records
    )
    losses = [h["train"]["cross_entropy"] for h in model.history_]
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.parametrize("name", ["adam", "sgd", "adagrad"])
def test_training_does_not_import_torch_dynamo(name):
    # torch.optim.Optimizer imports torch._dynamo when made and at its first step: 1.5-2 s of every fit
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from object2vec import Object2Vec\n"
        "from object2vec.data.synthetic import make_pairs\n"
        f"Object2Vec(epochs=1, optimizer={name!r}, device='cpu', enc0_vocab_size=50, enc0_max_seq_len=4).fit(make_pairs(64, vocab_size=(50, 50), max_len=(4, 4)))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
