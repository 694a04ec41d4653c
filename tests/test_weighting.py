"""Task weighting: the maths of each method on toy problems, then a tiny real training run per method."""

from __future__ import annotations

import csv
import io
import math
import random

import pytest
import torch
from torch import nn

from perception.train import CHECKPOINT
from perception.weighting import METHODS, build_weighting, per_task, project_conflicting
from tests.conftest import train_tiny

TASKS = ["a", "b"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared two-core machine, two spinning threads run several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scalar_losses(values: dict[str, float], p: torch.Tensor) -> dict[str, torch.Tensor]:
    """Losses with the given values that depend on a parameter, so they can be backpropagated."""
    return {t: v * p for t, v in values.items()}


class Toy(nn.Module):
    """A shared layer and one linear head per task; task b's targets are ten times larger."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 8)
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})
        self.x = torch.randn(32, 4)
        self.y = {"a": torch.randn(32, 1), "b": 10 * torch.randn(32, 1)}

    def losses(self) -> dict[str, torch.Tensor]:
        h = torch.relu(self.shared(self.x))
        return {t: nn.functional.mse_loss(self.heads[t](h), self.y[t]) for t in TASKS}


def test_per_task_sums_the_terms_of_each_task():
    terms = {"det_cls": torch.tensor(1.0), "det_box": torch.tensor(2.0), "seg": torch.tensor(3.0)}
    assert {k: float(v) for k, v in per_task(terms).items()} == {"detection": 3.0, "segmentation": 3.0}


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown weighting"):
        build_weighting("mgda", TASKS, {})


def test_fixed_is_the_weighted_sum():
    toy = Toy()
    build_weighting("fixed", TASKS, {"a": 2.0, "b": 0.5}).backward(toy.losses(), list(toy.shared.parameters()), 0)
    got = toy.shared.weight.grad.clone()
    toy.zero_grad()
    losses = toy.losses()
    (2.0 * losses["a"] + 0.5 * losses["b"]).backward()
    torch.testing.assert_close(got, toy.shared.weight.grad)


def test_pcgrad_projects_conflicting_gradients_and_keeps_agreeing_ones():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # g1 . g2 < 0
    out = project_conflicting([g1, g2], random.Random(0))
    g1_pc = g1 - (g1 @ g2) / (g2 @ g2) * g2  # [0.5, 0.5]
    g2_pc = g2 - (g2 @ g1) / (g1 @ g1) * g1  # [0, 1]
    torch.testing.assert_close(out, g1_pc + g2_pc)
    assert g1_pc @ g2 == pytest.approx(0) and g2_pc @ g1 == pytest.approx(0)
    assert out @ g1 >= 0 and out @ g2 >= 0  # the combined step hurts neither task
    agreeing = [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])]
    torch.testing.assert_close(project_conflicting(agreeing, random.Random(0)), agreeing[0] + agreeing[1])


def test_pcgrad_backward_on_a_network():
    toy = Toy()
    shared = list(toy.shared.parameters())
    per_task_grads = []
    for t in TASKS:
        grads = torch.autograd.grad(toy.losses()[t], shared)
        per_task_grads.append(torch.cat([g.flatten() for g in grads]))
    head_grads = {t: torch.autograd.grad(toy.losses()[t], toy.heads[t].weight)[0] for t in TASKS}
    # Make the two tasks conflict on the shared layer so the projection matters.
    toy.y["b"] = -toy.y["b"]
    per_task_grads[1] = torch.cat([g.flatten() for g in torch.autograd.grad(toy.losses()["b"], shared)])
    head_grads["b"] = torch.autograd.grad(toy.losses()["b"], toy.heads["b"].weight)[0]
    weighting = build_weighting("pcgrad", TASKS, {})
    assert weighting.backward_passes == 2
    weighting.backward(toy.losses(), shared, 0)
    expected = project_conflicting(per_task_grads, random.Random(0))
    got = torch.cat([p.grad.flatten() for p in shared])
    torch.testing.assert_close(got, expected)
    for t in TASKS:  # task-specific parameters get their plain gradient
        torch.testing.assert_close(toy.heads[t].weight.grad, head_grads[t])


def test_uncertainty_weights_settle_at_one_over_the_loss():
    p = torch.ones((), requires_grad=True)
    weighting = build_weighting("uncertainty", TASKS, {}, lr=0.05)
    for step in range(400):
        weights = weighting.backward(scalar_losses({"a": 4.0, "b": 0.25}, p), [p], step)
    assert weights["a"] < 1 < weights["b"]  # the larger loss is trusted less
    assert weights["a"] == pytest.approx(1 / 4.0, rel=0.1) and weights["b"] == pytest.approx(1 / 0.25, rel=0.1)


def test_uncertainty_leaves_an_absent_task_alone():
    p = torch.ones((), requires_grad=True)
    weighting = build_weighting("uncertainty", TASKS, {}, lr=0.05)
    for step in range(20):
        weighting.backward(scalar_losses({"a": 4.0, "b": 0.0}, p), [p], step)
    log_vars = weighting.log_vars.detach()
    assert float(log_vars[1]) == 0.0 and float(log_vars[0]) > 0.5


def test_dwa_favours_the_task_whose_loss_stopped_falling():
    p = torch.ones((), requires_grad=True)
    weighting = build_weighting("dwa", TASKS, {}, window=2)
    history = []
    for step in range(8):
        window = step // 2
        history.append(weighting.backward(scalar_losses({"a": 0.5**window, "b": 1.0}, p), [p], step))
    assert all(w == {"a": 1.0, "b": 1.0} for w in history[:4])  # the first two windows
    last = history[-1]
    assert last["b"] > last["a"] and sum(last.values()) == pytest.approx(2.0)
    # lambda = K softmax(r / T) with r_a = 0.5, r_b = 1, T = 2
    expected_a = 2 * math.exp(0.25) / (math.exp(0.25) + math.exp(0.5))
    assert last["a"] == pytest.approx(expected_a)


def test_gradnorm_equalises_gradient_norms_on_the_shared_layer():
    toy = Toy()
    layer = [toy.shared.weight]

    def weighted_norms(weights: dict[str, float]) -> list[float]:
        losses = toy.losses()
        return [weights[t] * torch.autograd.grad(losses[t], layer, retain_graph=True)[0].norm().item() for t in TASKS]

    before = weighted_norms({"a": 1.0, "b": 1.0})
    assert before[1] / before[0] > 5  # task b dominates the shared layer
    weighting = build_weighting("gradnorm", TASKS, {}, lr=0.02)
    for step in range(300):  # the model is held still; loss ratios stay 1, so the targets are equal
        toy.zero_grad()
        weights = weighting.backward(toy.losses(), list(toy.shared.parameters()), step, last_shared=layer)
    after = weighted_norms({t: float(weighting.weights.detach()[i]) for i, t in enumerate(TASKS)})
    assert after[1] / after[0] == pytest.approx(1.0, abs=0.1)
    assert float(weighting.weights.detach().sum()) == pytest.approx(2.0)
    assert weights["a"] > 1 > weights["b"]


def test_gradnorm_gives_slow_tasks_larger_gradients():
    """With equal gradient norms but task a's loss not falling while b's halves, a gets more weight."""
    p = torch.ones((), requires_grad=True)
    weighting = build_weighting("gradnorm", TASKS, {}, lr=0.02)
    for step in range(100):
        weights = weighting.backward(scalar_losses({"a": 1.0, "b": 1.0 if step == 0 else 0.5}, p), [p], step)
    assert weights["a"] > weights["b"]


def test_famo_weights_sum_to_one_and_move_to_the_slowest_task():
    p = torch.ones((), requires_grad=True)
    weighting = build_weighting("famo", TASKS, {}, lr=0.05)
    for step in range(60):
        weights = weighting.backward(scalar_losses({"a": 2.0 * 0.9**step, "b": 1.0}, p), [p], step)
        assert float(weighting.z.sum()) == pytest.approx(1.0)
        assert sum(weights.values()) == pytest.approx(1.0)
    z = weighting.z
    assert z[1] > 0.6 > z[0]  # b's loss does not fall: it gets the weight


def test_famo_gradient_is_the_normalised_log_loss_gradient():
    toy = Toy()
    weighting = build_weighting("famo", TASKS, {})
    weights = weighting.backward(toy.losses(), list(toy.shared.parameters()), 0)
    got = toy.shared.weight.grad.clone()
    toy.zero_grad()
    losses = toy.losses()
    (weights["a"] * losses["a"] + weights["b"] * losses["b"]).backward()
    torch.testing.assert_close(got, toy.shared.weight.grad)
    values = [losses[t].item() for t in TASKS]  # equal z: multipliers proportional to 1 / L
    assert weights["a"] / weights["b"] == pytest.approx(values[1] / values[0], rel=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_state_dict_round_trip(name):
    p = torch.ones((), requires_grad=True)
    kwargs = {"window": 2} if name == "dwa" else {}
    weighting = build_weighting(name, TASKS, {}, **kwargs)
    for step in range(5):
        weighting.backward(scalar_losses({"a": 2.0 / (step + 1), "b": 1.0}, p), [p], step)
    buffer = io.BytesIO()
    torch.save(weighting.state_dict(), buffer)
    buffer.seek(0)
    fresh = build_weighting(name, TASKS, {}, **kwargs)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for key, value in weighting.state_dict().items():
        if key != "_extra_state":
            torch.testing.assert_close(fresh.state_dict()[key], value, equal_nan=True)
    if weighting.optimizer:
        assert fresh.optimizer.state_dict()["state"][0]["step"] == weighting.optimizer.state_dict()["state"][0]["step"]


# A tiny run of the real trainer per method.

STATEFUL = {"uncertainty": ("log_vars", 0.0), "gradnorm": ("weights", 1.0), "famo": ("logits", 0.0)}


def read_metrics(run) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def method_overrides(name: str, **kwargs) -> list[str]:
    if name == "dwa":
        kwargs.setdefault("window", 2)
    return [f"train.weighting='{name}'", f"train.weighting_kwargs={kwargs!r}"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(METHODS))
def test_tiny_training_run_and_resume(name, tmp_path):
    """5 steps of the real trainer, then resume for one more: the weighting's state must carry over."""
    overrides = method_overrides(name, **({"lr": 0.1} if name in STATEFUL else {}))
    run = train_tiny(tmp_path / name, steps=5, extra=overrides)
    row = read_metrics(run)[-1]
    for key in ("loss", "det_cls", "det_box", "seg", "depth", "grad_norm"):
        assert math.isfinite(float(row[key])), (key, row)
    weights = [float(row[f"w_{t}"]) for t in ("detection", "segmentation", "depth")]
    assert all(0 < w < 10 for w in weights), weights
    if name == "famo":
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    if name in ("gradnorm", "dwa"):
        assert sum(weights) == pytest.approx(3.0, abs=1e-4)

    before = torch.load(run / CHECKPOINT, weights_only=True)["weighting"]
    train_tiny(run, steps=6, extra=overrides, resume=True)
    after = torch.load(run / CHECKPOINT, weights_only=True)["weighting"]
    assert after.keys() == before.keys()
    if name == "dwa":  # step 5 is inside window 2: the history carries over untouched
        torch.testing.assert_close(after["history"], before["history"], equal_nan=True)
        assert int(after["current_window"]) == 2 and torch.isfinite(after["history"]).all()
    if name in STATEFUL:
        key, initial = STATEFUL[name]
        assert (before[key] - initial).abs().max() > 0.05, "the state should have left its initial value"
        assert (after[key] - before[key]).abs().max() < 0.25  # one more step from there, not a restart
        steps = [int(s["_extra_state"]["optimizer"]["state"][0]["step"]) for s in (before, after)]
        assert steps[1] == steps[0] + 1
    if name == "gradnorm":
        torch.testing.assert_close(after["initial_losses"], before["initial_losses"])
