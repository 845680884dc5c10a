"""
Per-robot optimizers on distributed least squares.

DiNNO by hand, registry errors, determinism.
"""

from __future__ import annotations

from dinno_ros.core.learning import registry, simulation
from dinno_ros.core.learning.agent import RobotAgent
from dinno_ros.core.learning.optimizers import DivergedError, RobotOptimizer
from dinno_ros.core.learning.problems.base import robot_generator, TensorLocalProblem
from dinno_ros.core.learning.problems.density import bce_loss
from dinno_ros.core.learning.round import RoundGraph
from dinno_ros.core.learning.simulation import OfflineSwarm
import networkx as nx
import pytest
import torch

DIM, SAMPLES, NODES = 3, 12, 5


def squared_error(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(1) - y) ** 2).mean()


def lsq_data(seed: int = 0):
    """Each robot's (A_i, b_i) from a different true vector, so local optima disagree."""
    gen = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(NODES):
        a = torch.randn(SAMPLES, DIM, generator=gen)
        x_true = 2.0 * torch.randn(DIM, generator=gen)
        data.append((a, a @ x_true + 0.1 * torch.randn(SAMPLES, generator=gen)))
    return data


def central_solution(data) -> torch.Tensor:
    """
    Return argmin sum_i mean_s (a_s x - b_s)^2.

    It equals ordinary least squares on the stacked data (equal shares).
    """
    a = torch.cat([d[0] for d in data]).double()
    b = torch.cat([d[1] for d in data]).double()
    return torch.linalg.lstsq(a, b.unsqueeze(1)).solution.squeeze(1).float()


def lsq_robots(
    config: dict, data, batch_size: int = SAMPLES, seed: int = 0
) -> list[RobotOptimizer]:
    robots = []
    for i, (a, b) in enumerate(data):
        model = torch.nn.Linear(DIM, 1, bias=False)
        with torch.no_grad():
            model.weight.zero_()
        local = TensorLocalProblem(
            model, (a, b), batch_size, robot_generator(seed, i), squared_error
        )
        robots.append(registry.build_optimizer(config, local))
    return robots


def run_rounds(robots: list[RobotOptimizer], graph: nx.Graph, rounds: int) -> None:
    """Run the offline runner's rounds (everyone sends, then everyone steps) over ``graph``."""
    agents = [RobotAgent(i, robot.problem, robot) for i, robot in enumerate(robots)]
    simulation.run_rounds(OfflineSwarm(agents, RoundGraph(len(robots), fixed=graph)), rounds)


def max_error(robots: list[RobotOptimizer], x_star: torch.Tensor) -> float:
    return max(float((r.params - x_star).norm()) for r in robots)


# Full-batch gradients make the problem deterministic: DiNNO (ADMM) and DSGT (gradient tracking)
# converge exactly to the consensus optimum, so float32 round-off and the round budget are the only
# limits (1e-3, i.e. under 0.1% of |x*| ~ 1.3). DSGD's fixed point with step alpha is off the
# optimum by O(alpha); with alpha_k ~ 1/(mu k) the error falls like 1/k (measured 0.031 at 500
# rounds, 0.016 at 1000), so it is checked at 3e-2 after 1000 rounds: ~2% of the 1.3 it started
# from. Prox-PDA (primal-dual) and NEXT (gradient tracking, the paper's diminishing step) converge
# exactly as well: measured ~1e-6 after 300 rounds with these steps.
CASES = {
    'dinno': (
        {
            'alg_name': 'dinno',
            'rho_init': 1.0,
            'rho_scaling': 1.0,
            'primal_iterations': 5,
            'primal_optimizer': 'sgd',
            'primal_lr': 0.05,
            'outer_iterations': 400,
        },
        400,
        1e-3,
    ),
    'dsgt': (
        {'alg_name': 'dsgt', 'alpha': 0.05, 'init_grads': True, 'outer_iterations': 600},
        600,
        1e-3,
    ),
    'dsgd': ({'alg_name': 'dsgd', 'alpha0': 0.2, 'mu': 1.0, 'outer_iterations': 1000}, 1000, 3e-2),
    'prox_pda': ({'alg_name': 'prox_pda', 'beta': 3.0, 'outer_iterations': 300}, 300, 1e-3),
    'next': (
        {'alg_name': 'next', 'alpha0': 1.0, 'mu': 0.01, 'tau': 5.0, 'outer_iterations': 300},
        300,
        1e-3,
    ),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_converges_to_central_least_squares(name: str) -> None:
    config, rounds, tol = CASES[name]
    data = lsq_data()
    x_star = central_solution(data)
    robots = lsq_robots(config, data)
    start_error = max_error(robots, x_star)
    run_rounds(robots, nx.cycle_graph(NODES), rounds)
    assert max_error(robots, x_star) < tol, (name, start_error, max_error(robots, x_star))


def test_dinno_adam_log_schedule_converges() -> None:
    """
    The paper's primal setting (Adam, log-decayed lr).

    It also reaches the optimum on the convex problem.
    """
    config = {
        'alg_name': 'dinno',
        'rho_init': 0.5,
        'rho_scaling': 1.003,
        'primal_iterations': 5,
        'primal_optimizer': 'adam',
        'primal_lr_start': 0.05,
        'primal_lr_finish': 0.005,
        'lr_decay_type': 'log',
        'outer_iterations': 500,
    }
    data = lsq_data(1)
    robots = lsq_robots(config, data)
    run_rounds(robots, nx.wheel_graph(NODES), 500)
    assert max_error(robots, central_solution(data)) < 2e-2


def summed_squared_error(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    x, y = batch
    return ((model(x).squeeze(1) - y) ** 2).sum()


def two_scalar_robots(**dinno: object) -> list[RobotOptimizer]:
    """
    Robot 0: w=1, loss (w - 3)^2; robot 1: w=3, loss (2w - 2)^2 (one sample each).

    DiNNO with one sgd step of lr 0.1 per round, rho 0.5 doubled each round, and ``dinno``.
    """
    config = {
        'alg_name': 'dinno',
        'rho_init': 0.5,
        'rho_scaling': 2.0,
        'primal_iterations': 1,
        'primal_optimizer': 'sgd',
        'primal_lr': 0.1,
        'outer_iterations': 10,
        **dinno,
    }
    return scalar_robot_pair(config)


def scalar_robot_pair(config: dict) -> list[RobotOptimizer]:
    """Build the two scalar robots of :func:`two_scalar_robots` with any optimizer ``config``."""
    robots = []
    for w, a, b in ((1.0, 1.0, 3.0), (3.0, 2.0, 2.0)):
        model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(w)
        data = (torch.tensor([[a]]), torch.tensor([b]))
        local = TensorLocalProblem(model, data, 1, robot_generator(0, 0), summed_squared_error)
        robots.append(registry.build_optimizer(config, local))
    return robots


@pytest.mark.parametrize('dual_step, dual, w0, w1', [(1.0, 2.0, 1.8, 1.0), (0.5, 1.0, 1.7, 1.1)])
def test_dinno_round_by_hand(dual_step: float, dual: float, w0: float, w1: float) -> None:
    """
    Two robots, scalar model w, loss_i = (a_i w - b_i)^2, sgd, one primal iteration, lr 0.1.

    rho = 0.5 * 2 = 1 (scaled before the dual step).
    Duals: p0 = rho (w0 - w1) = 1 - 3 = -2, p1 = +2.
    Robot 0 (w0=1, a=1, b=3): grad = 2*1*(1*1 - 3) + p0 + 2 rho (w0 - (w0+w1)/2) = -4 - 2 - 2 = -8
        -> w0 = 1.8
    Robot 1 (w1=3, a=2, b=2): grad = 2*2*(2*3 - 2) + p1 + 2 rho (w1 - 2)       = 16 + 2 + 2 = 20
        -> w1 = 1.0
    With dual_step 0.5 the duals are +-1: grads -7 and 19 -> w0 = 1.7, w1 = 1.1.
    """
    robots = two_scalar_robots(dual_step=dual_step)
    run_rounds(robots, nx.path_graph(2), 1)
    assert robots[0].rho == pytest.approx(1.0)
    assert robots[0].dual.item() == pytest.approx(-dual)
    assert robots[1].dual.item() == pytest.approx(dual)
    assert robots[0].params.item() == pytest.approx(w0)
    assert robots[1].params.item() == pytest.approx(w1)
    assert robots[0].problem.model.weight.item() == pytest.approx(w0)  # the model itself moved


def test_dinno_preconditioned_round_by_hand() -> None:
    """
    The same two robots with ``primal_step: preconditioned`` (sgd, lr 0.1, rho 1).

    Duals in units of lr: p0 = rho (w0 - w1) / lr = -20, p1 = +20. Data steps: z0 = 1 + 0.1 * 4
    = 1.4, z1 = 3 - 0.1 * 16 = 1.4. Consensus prox, midpoint 2, deg 1:
    w0 = (1.4 + 0.1 * 20 + 2 * 2) / 3 = 7.4 / 3, w1 = (1.4 - 2 + 4) / 3 = 3.4 / 3.
    """
    robots = two_scalar_robots(primal_step='preconditioned')
    run_rounds(robots, nx.path_graph(2), 1)
    assert robots[0].dual.item() == pytest.approx(-20.0)
    assert robots[1].dual.item() == pytest.approx(20.0)
    assert robots[0].params.item() == pytest.approx(7.4 / 3)
    assert robots[1].params.item() == pytest.approx(3.4 / 3)


def test_dinno_preconditioned_reaches_the_central_optimum() -> None:
    """With SGD its fixed point is the central least-squares solution (duals sum to zero)."""
    config = {
        'alg_name': 'dinno',
        'rho_init': 0.1,
        'rho_scaling': 1.0,
        'primal_iterations': 5,
        'primal_optimizer': 'sgd',
        'primal_lr': 0.05,
        'outer_iterations': 400,
        'primal_step': 'preconditioned',
    }
    data = lsq_data()
    robots = lsq_robots(config, data)
    run_rounds(robots, nx.cycle_graph(NODES), 400)
    assert max_error(robots, central_solution(data)) < 1e-3
    assert float(torch.stack([r.dual for r in robots]).sum(0).abs().max()) < 1e-3


def tracked_lsq_config(primal_step: str) -> dict:
    """Return DiNNO with Adam for the least-squares robots: 5 steps a round, lr 0.05 -> 1e-4."""
    return {
        'alg_name': 'dinno',
        'rho_init': 0.1,
        'rho_scaling': 1.0,
        'primal_iterations': 5,
        'primal_optimizer': 'adam',
        'primal_lr_start': 0.05,
        'primal_lr_finish': 1e-4,
        'outer_iterations': 400,
        'persistant_primal_opt': True,
        'dual_step': 0.1,
        'primal_step': primal_step,
    }


def test_dinno_tracked_reaches_the_central_optimum_with_adam() -> None:
    """
    Adam on the tracked mean gradient reaches the central optimum; each robot's own Adam does not.

    With ``preconditioned`` the fixed point is where the robots' Adam-normalised gradients sum to
    zero (measured error 0.6 of |x*| = 1.3); ``tracked`` normalises the swarm's mean gradient, as
    one central Adam would (measured under 1e-4).
    """
    data = lsq_data()
    x_star = central_solution(data)
    errors = {}
    for primal_step in ('preconditioned', 'tracked'):
        robots = lsq_robots(tracked_lsq_config(primal_step), data)
        for robot in robots:
            robot.swarm_size = NODES
        run_rounds(robots, nx.cycle_graph(NODES), 400)
        errors[primal_step] = max_error(robots, x_star)
    assert errors['tracked'] < 1e-3, errors
    assert errors['preconditioned'] > 0.1, errors  # the check can fail


def test_dinno_tracked_keeps_the_swarm_mean_gradient() -> None:
    """After every round the trackers' mean is the robots' mean round gradient."""
    data = lsq_data()
    robots = lsq_robots(tracked_lsq_config('tracked'), data, batch_size=8)
    assert set(robots[0].outgoing()) == {'params', 'tracker'}
    for _ in range(3):
        run_rounds(robots, nx.cycle_graph(NODES), 1)
        trackers = torch.stack([r.tracked.tracker for r in robots]).mean(0)
        grads = torch.stack([r.tracked.round_grad for r in robots]).mean(0)
        assert torch.allclose(trackers, grads, atol=1e-5)


def test_dinno_tracked_needs_adam() -> None:
    config = {**tracked_lsq_config('tracked'), 'primal_optimizer': 'sgd'}
    with pytest.raises(ValueError, match=r'primal_optimizer.*tracked.*allowed: adam'):
        registry.parse_optimizer_config(config)


def test_dsgd_round_by_hand_and_alpha_decay() -> None:
    """
    Path 0-1: degrees 1, 1 -> W = [[1/2, 1/2], [1/2, 1/2]].

    The gradient is taken at the mixed point.
    """
    config = {'alg_name': 'dsgd', 'alpha0': 0.1, 'mu': 0.5, 'outer_iterations': 10}
    robots = []
    for w, b in ((1.0, 0.0), (3.0, 4.0)):
        model = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.fill_(w)
        local = TensorLocalProblem(
            model,
            (torch.tensor([[1.0]]), torch.tensor([b])),
            1,
            robot_generator(0, 0),
            lambda m, bt: ((m(bt[0]).squeeze(1) - bt[1]) ** 2).sum(),
        )
        robots.append(registry.build_optimizer(config, local))
    run_rounds(robots, nx.path_graph(2), 1)
    # mixed w = 2; grads 2*(2-0)=4 and 2*(2-4)=-4
    assert robots[0].params.item() == pytest.approx(2.0 - 0.1 * 4.0)
    assert robots[1].params.item() == pytest.approx(2.0 + 0.1 * 4.0)
    assert robots[0].alpha == pytest.approx(0.1 * (1 - 0.5 * 0.1))


def test_prox_pda_rounds_by_hand() -> None:
    """
    The two scalar robots, beta 10, path 0-1 (degree 1): grads -4 (robot 0) and 16 (robot 1).

    Round 1, dual step with x = (1, 3), then the primal step:
    lambda0 = 10 (1 - 3) = -20, lambda1 = +20;
    w0 = (10 (1 + 3) + 4 + 20) / (2 * 10) = 3.2, w1 = (10 (3 + 1) - 16 - 20) / 20 = 0.2.
    Round 2: lambda0 = -20 + 10 (3.2 - 0.2) = 10, lambda1 = -10; grads 2 (3.2 - 3) = 0.4 and
    4 (2 * 0.2 - 2) = -6.4; w0 = (10 * 3.4 - 0.4 - 10) / 20 = 1.18, w1 = (34 + 6.4 + 10) / 20
    = 2.52. The duals sum to zero (1^T L^- = 0).
    """
    robots = scalar_robot_pair({'alg_name': 'prox_pda', 'beta': 10.0, 'outer_iterations': 10})
    assert set(robots[0].outgoing()) == {'params'}
    run_rounds(robots, nx.path_graph(2), 1)
    assert robots[0].dual.item() == pytest.approx(-20.0)
    assert robots[1].dual.item() == pytest.approx(20.0)
    assert robots[0].params.item() == pytest.approx(3.2)
    assert robots[1].params.item() == pytest.approx(0.2)
    assert robots[0].problem.model.weight.item() == pytest.approx(3.2)  # the model itself moved
    run_rounds(robots, nx.path_graph(2), 1)
    assert robots[0].dual.item() == pytest.approx(10.0)
    assert robots[1].dual.item() == pytest.approx(-10.0)
    assert robots[0].params.item() == pytest.approx(1.18)
    assert robots[1].params.item() == pytest.approx(2.52)


def test_next_rounds_by_hand() -> None:
    """
    The two scalar robots, alpha0 0.5, mu 0.4, tau 10, path 0-1: W = [[1/2, 1/2], [1/2, 1/2]].

    Round 0 (z^-1 = (1, 3), y^-1 = 0): x = W z = (2, 2); grads 2 (2 - 3) = -2 and
    4 (2 * 2 - 2) = 8, so y = W 0 + g - 0 = (-2, 8); z = x - alpha y / tau = (2.1, 1.6);
    alpha <- 0.5 (1 - 0.4 * 0.5) = 0.4.
    Round 1: x = W z = (1.85, 1.85); grads -2.3 and 6.8; y = W y + g - g_prev
    = (3 - 2.3 + 2, 3 + 6.8 - 8) = (2.7, 1.8) (sum 4.5 = the gradients' sum);
    z = 1.85 - 0.4 y / 10 = (1.742, 1.778); alpha <- 0.4 (1 - 0.4 * 0.4) = 0.336.
    """
    config = {'alg_name': 'next', 'alpha0': 0.5, 'mu': 0.4, 'tau': 10.0, 'outer_iterations': 10}
    robots = scalar_robot_pair(config)
    assert set(robots[0].outgoing()) == {'params', 'tracker'}
    run_rounds(robots, nx.path_graph(2), 1)
    assert [r.tracker.item() for r in robots] == pytest.approx([-2.0, 8.0])
    assert [r.params.item() for r in robots] == pytest.approx([2.1, 1.6])
    assert robots[0].alpha == pytest.approx(0.4)
    run_rounds(robots, nx.path_graph(2), 1)
    assert [r.tracker.item() for r in robots] == pytest.approx([2.7, 1.8])
    assert [r.params.item() for r in robots] == pytest.approx([1.742, 1.778])
    assert [r.problem.model.weight.item() for r in robots] == pytest.approx([1.742, 1.778])
    assert robots[1].alpha == pytest.approx(0.336)


@pytest.mark.parametrize(
    'config, key, allowed',
    [
        ({'alg_name': 'prox_pda', 'beta': 0.0}, 'optimizer_config.beta', '> 0'),
        ({'alg_name': 'prox_pda', 'beta': 'big'}, 'optimizer_config.beta', 'number'),
        ({'alg_name': 'prox_pda', 'rho': 1.0}, 'optimizer_config.rho', 'beta, outer_iterations'),
        ({'alg_name': 'next', 'tau': -1.0}, 'optimizer_config.tau', '> 0'),
        ({'alg_name': 'next', 'alpha0': 1.5}, 'optimizer_config.alpha0', '<= 1'),
        (
            {'alg_name': 'next', 'alpha0': 0.5, 'mu': 2.0},
            'optimizer_config.mu',
            '< 1 / alpha0 = 2',
        ),
        ({'alg_name': 'next', 'surrogate': 'local'}, 'optimizer_config.surrogate', 'alpha0, mu'),
    ],
)
def test_prox_pda_and_next_config_errors(config: dict, key: str, allowed: str) -> None:
    """A bad Prox-PDA or NEXT value names its key and what is allowed."""
    with pytest.raises(ValueError) as info:
        registry.parse_optimizer_config(config)
    assert key in str(info.value) and allowed in str(info.value), str(info.value)


def test_isolated_robot_takes_local_steps() -> None:
    """
    With no neighbours every algorithm still descends its own loss.

    No NaNs, no consensus terms.
    """
    data = lsq_data()
    a, b = data[0]
    x_local = torch.linalg.lstsq(a, b.unsqueeze(1)).solution.squeeze(1)
    for name, (config, _, _) in CASES.items():
        config = (
            {**config, 'mu': 0.0} if name == 'dsgd' else config
        )  # constant step: full-batch GD
        robot = lsq_robots(config, data[:1])[0]
        for k in range(300):
            robot.outgoing()
            robot.step(k, {}, 0)
        assert float((robot.params - x_local).norm()) < 0.1, name


@pytest.mark.parametrize('name', sorted(CASES))
def test_divergence_is_an_error_naming_robot_and_round(name: str) -> None:
    """A step size far too large blows the parameters up: the run stops saying where and why."""
    big = {
        'dinno': {'primal_lr': 50.0},
        'dsgt': {'alpha': 50.0},
        'dsgd': {'alpha0': 50.0},
        'prox_pda': {'beta': 0.01},  # primal step 1 / (2 beta d_i) = 25
        'next': {'tau': 0.02},  # step alpha / tau = 50
    }[name]
    robots = lsq_robots({**CASES[name][0], **big}, lsq_data())
    with pytest.raises(DivergedError, match=r'robot \d, round \d+: .* (NaN|inf)'):
        run_rounds(robots, nx.cycle_graph(NODES), 200)


def test_nan_outputs_from_finite_weights_are_divergence_too() -> None:
    """Finite weights whose products overflow: the BCE's range error becomes DivergedError."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[3e38, -3e38]]))
    data = (torch.full((1, 2), 10.0), torch.ones(1))
    local = TensorLocalProblem(model, data, 1, robot_generator(0, 0), bce_loss)
    robot = RobotAgent(0, local, registry.build_optimizer(CASES['dinno'][0], local))
    with pytest.raises(DivergedError, match='robot 0, round 7: dinno diverged: the model outputs'):
        robot.finish_round(7, {}, 0)


def test_dsgt_sends_params_and_tracker() -> None:
    robots = lsq_robots(CASES['dsgt'][0], lsq_data())
    assert set(robots[0].outgoing()) == {'params', 'tracker'}
    assert set(lsq_robots(CASES['dinno'][0], lsq_data())[0].outgoing()) == {'params'}


@pytest.mark.parametrize('name', sorted(CASES))
def test_same_seed_gives_identical_vectors(name: str) -> None:
    """
    Stochastic minibatches (4 of 12 samples) drawn from per-robot generators.

    Same seed -> same bits.
    """
    config = CASES[name][0]
    runs = []
    for seed in (7, 7, 8):
        robots = lsq_robots(config, lsq_data(), batch_size=4, seed=seed)
        run_rounds(robots, nx.cycle_graph(NODES), 20)
        runs.append(torch.stack([r.params.clone() for r in robots]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_outgoing_is_a_copy_and_external_writes_are_seen() -> None:
    robot = lsq_robots(CASES['dinno'][0], lsq_data())[0]
    sent = robot.outgoing()['params']
    sent.add_(1.0)
    assert torch.count_nonzero(robot.params) == 0
    torch.nn.utils.vector_to_parameters(
        torch.ones(DIM), robot.problem.model.parameters()
    )  # replaces storage
    assert torch.equal(robot.params, torch.ones(DIM))
    robot.step(0, {}, 0)
    assert torch.equal(robot.params, robot.problem.model.weight.detach().reshape(-1))


def test_registry_errors_name_key_and_allowed_values() -> None:
    cases = [
        ({'alg_name': 'adam'}, 'optimizer_config.alg_name', 'dinno, dsgd, dsgt'),
        ({'rho_init': 1.0}, 'optimizer_config.alg_name', 'dinno, dsgd, dsgt'),
        (
            {'alg_name': 'dinno', 'primal_optimizer': 'rmsprop'},
            'optimizer_config.primal_optimizer',
            'adam, adamw, sgd',
        ),
        (
            {'alg_name': 'dinno', 'lr_decay_type': 'cosine'},
            'optimizer_config.lr_decay_type',
            'constant, linear, log',
        ),
        ({'alg_name': 'dinno', 'rho_init': 'big'}, 'optimizer_config.rho_init', 'number'),
        (
            {'alg_name': 'dinno', 'primal_iterations': 0},
            'optimizer_config.primal_iterations',
            '>= 1',
        ),
        ({'alg_name': 'dinno', 'rho': 1.0}, 'optimizer_config.rho', 'rho_init'),
        ({'alg_name': 'dsgd', 'alpha0': 0.0}, 'optimizer_config.alpha0', '> 0'),
        (
            {'alg_name': 'dsgt', 'init_grads': 'yes'},
            'optimizer_config.init_grads',
            'true or false',
        ),
    ]
    for config, key, allowed in cases:
        with pytest.raises(ValueError) as info:
            registry.parse_optimizer_config(config)
        assert key in str(info.value) and allowed in str(info.value), str(info.value)


def test_registry_accepts_seed_keys_and_rejects_bad_registrations() -> None:
    cls, cfg = registry.parse_optimizer_config(
        {
            'alg_name': 'dinno',
            'rho_init': 0.5,
            'rho_scaling': 1.0003,
            'outer_iterations': 2000,
            'primal_iterations': 2,
            'primal_optimizer': 'adam',
            'persistant_primal_opt': False,
            'lr_decay_type': 'log',
            'primal_lr_start': 0.005,
            'primal_lr_finish': '5e-4',
            'profile': False,
        }
    )
    assert cls.name == 'dinno' and cfg.primal_lr_finish == pytest.approx(5e-4)
    assert cfg.lr(0) == pytest.approx(0.005) and cfg.lr(1999) == pytest.approx(0.0005)
    assert cfg.lr(999) == pytest.approx(0.005 * 0.1 ** (999 / 1999))
    _, seed_cfg = registry.parse_optimizer_config({'alg_name': 'dinno', 'primal_lr': 0.001})
    assert seed_cfg.lr(0) == seed_cfg.lr(500) == pytest.approx(0.001)
    with pytest.raises(ValueError, match='already registered'):
        registry.register_optimizer('dinno')(
            registry.parse_optimizer_config({'alg_name': 'dinno'})[0]
        )
    dinno_cls = registry.parse_optimizer_config({'alg_name': 'dinno'})[0]
    # a new name whose alias is taken, and a name that is another's alias: both name the owner
    with pytest.raises(ValueError, match="'dinno' is already registered by DiNNO"):
        registry.register_optimizer('mine', aliases=('dinno',))(dinno_cls)
    with pytest.raises(ValueError, match="'cadmm' is already registered by DiNNO"):
        registry.register_optimizer('cadmm')(dinno_cls)
    with pytest.raises(ValueError, match='not a subclass'):
        registry.register_optimizer('mine')(dict)


def test_persistent_primal_optimizer_keeps_its_moments() -> None:
    base = {
        'alg_name': 'dinno',
        'primal_iterations': 1,
        'primal_optimizer': 'adam',
        'primal_lr': 0.01,
    }
    robot = lsq_robots({**base, 'persistant_primal_opt': True}, lsq_data())[0]
    robot.step(0, {}, 0)
    opt = robot._opt
    robot.step(1, {}, 0)
    assert robot._opt is opt and opt.state[robot.params]['step'] == 2
    fresh = lsq_robots(base, lsq_data())[0]
    fresh.step(0, {}, 0)
    first = fresh._opt
    fresh.step(1, {}, 0)
    assert fresh._opt is not first


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
@pytest.mark.parametrize('name', sorted(CASES))
def test_cuda_matches_cpu(name: str) -> None:
    """The same rounds on CUDA (data, model, messages on the device) agree with the CPU path."""
    config = CASES[name][0]
    results = []
    for device in ('cpu', 'cuda'):
        robots = []
        for i, (a, b) in enumerate(lsq_data()):
            model = torch.nn.Linear(DIM, 1, bias=False).to(device)
            with torch.no_grad():
                model.weight.zero_()
            local = TensorLocalProblem(
                model, (a.to(device), b.to(device)), 4, robot_generator(0, i), squared_error
            )
            robots.append(registry.build_optimizer(config, local))
        run_rounds(robots, nx.cycle_graph(NODES), 50)
        assert robots[0].params.device.type == device
        results.append(torch.stack([r.params.cpu() for r in robots]))
    assert torch.allclose(results[0], results[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('name', sorted(CASES))
def test_a_dropped_robot_leaves_what_it_taught_with_the_survivors(name: str) -> None:
    """
    A robot dropping out of a converged swarm: the survivors keep its share of the optimum.

    DiNNO's duals and the trackers of DSGT and NEXT (Prox-PDA's duals too) hold the dead robot's
    last gradient, so the survivors, on a ring closed again without it, stay at the optimum over
    all five robots' data (measured 0.0000), 1.23 from the survivors' own. DSGD holds no such
    memory: it moves to the survivors' optimum (0.08 from it after 1000 rounds).
    """
    config, rounds, _ = CASES[name]
    data = lsq_data()
    x_all, x_survivors = central_solution(data), central_solution(data[:-1])
    robots = lsq_robots(config, data)
    run_rounds(robots, nx.cycle_graph(NODES), 200)
    survivors = robots[:-1]  # the last robot is gone; the others close the ring
    run_rounds(survivors, nx.cycle_graph(NODES - 1), rounds)
    if name == 'dsgd':
        assert max_error(survivors, x_survivors) < 0.2 < 1.0 < max_error(survivors, x_all)
    else:
        assert max_error(survivors, x_all) < 1e-2 and max_error(survivors, x_survivors) > 1.0
