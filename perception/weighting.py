"""Task weighting: how the per-task losses become gradients, chosen by ``train.weighting``.

Every method is a small ``nn.Module`` with one call, ``backward(task_losses, shared, step)``: it
writes the gradients of the model (shared and task-specific parameters) into ``.grad`` and returns
the multiplier each task's loss got this step (logged as ``w_<task>``). Methods with state of their
own (uncertainty's log-variances, GradNorm's weights, FAMO's logits, DWA's loss history) keep it
in the module, update it inside ``backward`` with their own small Adam optimiser (not the model's
AdamW: no schedule, no weight decay, no gradient clipping), and checkpoint it all through
``state_dict()``, the optimiser's state included.

Methods: ``fixed``, ``uncertainty`` (Kendall et al. 2018), ``dwa`` (Liu et al. 2019), ``gradnorm``
(Chen et al. 2018), ``pcgrad`` (Yu et al. 2020) and ``famo`` (Liu et al. 2023). Costs are in
docs/weighting.md.

Partial labels: a task whose loss is exactly zero this step (no sample in the batch has its label,
see ``perception.losses``) is treated as absent; adaptive methods leave its state alone.
Distributed: the weighting's own gradients and loss statistics are averaged over processes, so
every rank holds the same weights; ``pcgrad`` needs one backward per task and runs in a single
process only.
"""

from __future__ import annotations

import random

import torch
import torch.distributed as dist
from torch import Tensor, nn

from perception.losses import task_of


def per_task(losses: dict[str, Tensor]) -> dict[str, Tensor]:
    """Sum the loss terms of each task: {"det_cls", "det_box", "seg", "depth"} → {"detection", ...}."""
    out: dict[str, Tensor] = {}
    for term, value in losses.items():
        task = task_of(term)
        out[task] = out[task] + value if task in out else value
    return out


def shared_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The parameters every task uses (backbone and neck), and the last shared stage (the neck),
    on which GradNorm measures gradient norms. The FPN has no single last layer that all tasks use
    (detection reads strides 8-32, the dense decoder stride 8), so the whole neck stands in for it."""
    last = [p for p in model.neck.parameters() if p.requires_grad]
    shared = [p for p in model.backbone.parameters() if p.requires_grad] + last
    return shared, last


def _present(loss: Tensor) -> bool:
    return loss.detach().item() != 0.0


def _all_mean(x: Tensor) -> Tensor:
    """Average over processes when running distributed (a no-op otherwise)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


class TaskWeighting(nn.Module):
    """The common interface. ``backward`` must be called after ``optimizer.zero_grad()``."""

    backward_passes = 1  # full backward passes through the network per step

    def __init__(self, tasks: list[str], fixed_weights: dict[str, float]):
        super().__init__()
        self.tasks = list(tasks)
        self.fixed = {t: float(fixed_weights.get(t, 1.0)) for t in self.tasks}
        self.optimizer: torch.optim.Optimizer | None = None  # for the method's own parameters

    def backward(
        self,
        task_losses: dict[str, Tensor],
        shared: list[nn.Parameter],
        step: int,
        last_shared: list[nn.Parameter] | None = None,
    ) -> dict[str, float]:
        """Write gradients into ``.grad``; return the multiplier each task's loss received."""
        raise NotImplementedError

    def _step_own(self) -> None:
        """One step of the method's own optimiser on its (process-averaged) gradients."""
        for p in self.parameters():
            if p.grad is not None:
                p.grad = _all_mean(p.grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # The optimiser's state travels in state_dict() under "_extra_state".
    def get_extra_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()} if self.optimizer else {}

    def set_extra_state(self, state: dict) -> None:
        if self.optimizer and "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])


class Fixed(TaskWeighting):
    """Constant weights from ``train.task_weights``: sum_i w_i L_i, one backward."""

    def backward(self, task_losses, shared, step, last_shared=None):
        sum(self.fixed[t] * loss for t, loss in task_losses.items()).backward()
        return {t: self.fixed[t] for t in task_losses}


class Uncertainty(TaskWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, "Multi-Task Learning
    Using Uncertainty to Weigh Losses for Scene Geometry and Semantics").

    Learns s_i = log sigma_i^2 per task and minimises sum_i exp(-s_i) L_i + s_i, whose optimum is
    s_i = log L_i: a task's weight falls as its loss grows. The paper's regression form
    (1/(2 sigma^2) L + log sigma) and classification form (1/sigma^2 L + log sigma) differ only by
    constant factors; this is the common single form used for every task.
    """

    def __init__(self, tasks, fixed_weights, lr: float = 5e-3, init: float = 0.0):
        super().__init__(tasks, fixed_weights)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))
        self.optimizer = torch.optim.Adam([self.log_vars], lr=lr)

    def backward(self, task_losses, shared, step, last_shared=None):
        total = 0.0
        weights = {}
        for i, task in enumerate(self.tasks):
            if task not in task_losses:
                continue
            s = self.log_vars[i]
            loss = task_losses[task]
            total = total + torch.exp(-s) * loss + (s if _present(loss) else 0.0)
            weights[task] = float(torch.exp(-s.detach()))
        total.backward()
        self._step_own()
        return weights


class DWA(TaskWeighting):
    """Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019, "End-to-End Multi-Task Learning with
    Attention"). lambda_i = K softmax_i(r_i / T) with r_i = Lbar_i(k-1) / Lbar_i(k-2), the ratio of
    the task's average loss over the last two windows: a task whose loss stopped falling gets more
    weight. The paper averages over epochs; we train by steps, so a window is ``window`` steps.
    Weights are 1 for the first two windows. ``task_weights`` scale the losses as for ``fixed``.
    """

    def __init__(self, tasks, fixed_weights, window: int = 200, temperature: float = 2.0):
        super().__init__(tasks, fixed_weights)
        self.window, self.temperature = int(window), float(temperature)
        k = len(self.tasks)
        self.register_buffer("history", torch.full((2, k), float("nan")))  # averages of windows k-2, k-1
        self.register_buffer("acc_sum", torch.zeros(k))
        self.register_buffer("acc_count", torch.zeros(k))
        self.register_buffer("current_window", torch.tensor(0))
        self.register_buffer("lambdas", torch.ones(k))

    def _roll(self, window: int) -> None:
        average = self.acc_sum / self.acc_count  # nan for a task absent all window
        average = _all_mean(average)
        self.history = torch.stack((self.history[1], average))
        self.acc_sum.zero_()
        self.acc_count.zero_()
        self.current_window.fill_(window)
        ratio = self.history[1] / self.history[0]
        ratio = torch.where(torch.isfinite(ratio), ratio, torch.ones_like(ratio))
        self.lambdas = len(self.tasks) * torch.softmax(ratio / self.temperature, 0)

    def backward(self, task_losses, shared, step, last_shared=None):
        window = step // self.window
        if window > int(self.current_window):
            self._roll(window)
        total = 0.0
        weights = {}
        for i, task in enumerate(self.tasks):
            if task not in task_losses:
                continue
            loss = task_losses[task]
            if _present(loss):
                self.acc_sum[i] += loss.detach().float()
                self.acc_count[i] += 1
            weights[task] = self.fixed[task] * float(self.lambdas[i])
            total = total + weights[task] * loss
        total.backward()
        return weights


class GradNorm(TaskWeighting):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018, "GradNorm: Gradient Normalization
    for Adaptive Loss Balancing in Deep Multitask Networks").

    Learnable weights w_i (sum fixed to K). On the last shared layer W, G_i = ||grad_W w_i L_i||;
    the weights follow grad_w sum_i |G_i - mean(G) r_i^alpha|, where r_i is task i's loss ratio
    L_i(t)/L_i(0) relative to the mean ratio, so tasks that train slowly get larger gradients.
    The model gets sum_i w_i L_i. Cost: one extra backward per task, from the task's loss down to
    W only (through its head and the neck), plus the usual full backward. Since grad_W(w_i L_i) =
    w_i grad_W L_i, no second-order gradient is needed.
    """

    def __init__(self, tasks, fixed_weights, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(tasks, fixed_weights)
        self.alpha = float(alpha)
        self.weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.register_buffer("initial_losses", torch.full((len(self.tasks),), float("nan")))
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)

    def backward(self, task_losses, shared, step, last_shared=None):
        layer = last_shared or shared
        index = {t: i for i, t in enumerate(self.tasks)}
        present = [t for t in self.tasks if t in task_losses and _present(task_losses[t])]
        w = self.weights
        if len(present) > 1:
            norms = []
            for task in present:
                grads = torch.autograd.grad(task_losses[task], layer, retain_graph=True, allow_unused=True)
                squares = [g.float().pow(2).sum() for g in grads if g is not None]
                norms.append(torch.stack(squares).sum().sqrt() if squares else w.new_zeros(()))
            idx = torch.tensor([index[t] for t in present], device=w.device)
            losses = torch.stack([task_losses[t].detach().float() for t in present])
            initial = self.initial_losses[idx]
            initial = torch.where(torch.isnan(initial), losses, initial)
            self.initial_losses[idx] = initial
            g = w[idx] * torch.stack(norms).detach()  # G_i, differentiable in w only
            ratio = losses / initial
            target = (g.mean() * (ratio / ratio.mean()).pow(self.alpha)).detach()
            w.grad = torch.autograd.grad((g - target).abs().sum(), w)[0]
        used = w.detach().clone()
        sum(used[index[t]] * loss for t, loss in task_losses.items()).backward()
        if len(present) > 1:
            self._step_own()
            with torch.no_grad():  # keep the weights positive and summing to K
                w.clamp_(min=1e-3)
                w.mul_(len(self.tasks) / w.sum())
        return {t: float(used[index[t]]) for t in task_losses}


class PCGrad(TaskWeighting):
    """PCGrad, gradient surgery (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020, "Gradient
    Surgery for Multi-Task Learning").

    Per-task gradients g_i on the shared parameters; for each task, in random order over the other
    tasks j, if g_i . g_j < 0 replace g_i by g_i - (g_i . g_j)/|g_j|^2 g_j (projection onto the
    normal plane of g_j); the shared gradient is the sum of the projected g_i. Task-specific
    parameters get their plain gradients. Costs one backward per task and one copy of the shared
    gradient per task. ``task_weights`` scale the losses as for ``fixed``.
    """

    def __init__(self, tasks, fixed_weights, seed: int = 0):
        super().__init__(tasks, fixed_weights)
        self.rng = random.Random(seed)

    @property
    def backward_passes(self) -> int:
        return len(self.tasks)

    def backward(self, task_losses, shared, step, last_shared=None):
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            raise NotImplementedError("pcgrad runs in a single process only (one backward per task)")
        names = list(task_losses)
        grads = []  # one flattened copy of the shared gradient per task
        for n, task in enumerate(names):
            (self.fixed[task] * task_losses[task]).backward(retain_graph=n < len(names) - 1)
            flat = [p.grad.flatten() if p.grad is not None else p.new_zeros(p.numel()) for p in shared]
            grads.append(torch.cat(flat))
            for p in shared:
                p.grad = None
        combined = project_conflicting(grads, self.rng)
        offset = 0
        for p in shared:
            p.grad = combined[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
        return {t: self.fixed[t] for t in names}


def project_conflicting(grads: list[Tensor], rng: random.Random) -> Tensor:
    """PCGrad's projection: the sum over tasks of each gradient with its conflicts projected away."""
    out = torch.zeros_like(grads[0])
    for i, g in enumerate(grads):
        g = g.clone()
        others = [j for j in range(len(grads)) if j != i]
        rng.shuffle(others)
        for j in others:
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g -= dot / grads[j].pow(2).sum().clamp(min=1e-20) * grads[j]
        out += g
    return out


class FAMO(TaskWeighting):
    """Fast Adaptive Multitask Optimization (Liu, Liu, Jin, Stone & Liu, NeurIPS 2023, "FAMO: Fast
    Adaptive Multitask Optimization").

    Weights z = softmax(xi). The model descends sum_i z_i log L_i / c with c = sum_i z_i / L_i, so
    each task's loss gets the multiplier z_i / (c L_i) (these sum to 1) and all log-losses fall at
    rates balanced by z. After the model's step the logits follow the observed decrease
    delta_i = log L_i(t) - log L_i(t+1): xi <- xi - beta (dz/dxi)^T delta (Adam, weight decay
    gamma), which moves weight toward the tasks whose loss falls slowest. O(1) time and memory: one
    backward, K numbers of state. The paper's practical form measures L(t+1) on the next batch
    rather than with an extra forward pass, which is what we do: the update for step t runs at the
    start of step t+1, so the trainer needs no hook after the optimiser step.
    """

    def __init__(self, tasks, fixed_weights, lr: float = 0.025, gamma: float = 1e-3, eps: float = 1e-8):
        super().__init__(tasks, fixed_weights)
        self.eps = float(eps)
        self.logits = nn.Parameter(torch.zeros(len(self.tasks)))
        self.register_buffer("previous", torch.full((len(self.tasks),), float("nan")))  # log L(t-1)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, weight_decay=gamma)

    @property
    def z(self) -> Tensor:
        return torch.softmax(self.logits.detach(), 0)

    def update(self, log_losses: Tensor) -> None:
        """One step of the logits from log L(t-1) (stored) to log L(t); nan marks an absent task."""
        delta = _all_mean(self.previous - log_losses)
        delta = torch.where(torch.isfinite(delta), delta, torch.zeros_like(delta))
        if (delta != 0).any():
            with torch.enable_grad():
                self.logits.grad = torch.autograd.grad(torch.softmax(self.logits, 0), self.logits, delta)[0]
            self._step_own()
        self.previous = log_losses

    def backward(self, task_losses, shared, step, last_shared=None):
        log_losses = torch.full_like(self.previous, float("nan"))
        for i, task in enumerate(self.tasks):
            if task in task_losses and _present(task_losses[task]):
                log_losses[i] = (task_losses[task].detach().float() + self.eps).log()
        if not torch.isnan(self.previous).all():
            self.update(log_losses)
        else:
            self.previous = log_losses
        z = self.z
        present = [i for i, t in enumerate(self.tasks) if t in task_losses and torch.isfinite(log_losses[i])]
        c = sum(z[i] / log_losses[i].exp() for i in present) if present else 1.0
        weights = {t: 0.0 for t in task_losses}
        total = sum(0.0 * loss for loss in task_losses.values())  # keeps every head in the graph
        for i in present:
            task = self.tasks[i]
            weights[task] = float(z[i] / (c * log_losses[i].exp()))
            total = total + z[i] / c * (task_losses[task].float() + self.eps).log()
        total.backward()
        return weights


METHODS: dict[str, type[TaskWeighting]] = {
    "fixed": Fixed,
    "uncertainty": Uncertainty,
    "dwa": DWA,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
    "famo": FAMO,
}


def build_weighting(name: str, tasks: list[str], fixed_weights: dict[str, float], **kwargs) -> TaskWeighting:
    """The weighting called ``name`` (see METHODS); ``kwargs`` are the method's own options."""
    if name not in METHODS:
        raise ValueError(f"unknown weighting {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name](tasks, fixed_weights, **kwargs)
