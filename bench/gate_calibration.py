"""Calibration of the promotion gate: false promotions with no true difference, and time to power.

A seeded Monte Carlo that decides with the real `evaluate_gate`. Evaluating the gate on every day
of every run would cost minutes per cell, so a screen first computes the gate's own statistic
(d̄ − δ against σ̂·m(t), from `long_run_variance` and the mode's boundary) for all runs and days
at once, vectorised, and the gate is called only where that statistic comes within a slack of
its boundary. To show that the screen loses nothing, the runs it screened out that came closest
to a boundary are then evaluated on every day, unscreened; the table reports how many of them
the gate would have promoted (it should be 0).

Table 1: the family-wise false-promotion rate (any challenger promoted) with no true difference,
checked on every day to day 250, for k = 1, 5, 10 challengers, in every mode, with the Monte
Carlo standard error. The DSR floor is set to 0 so that the superiority rule is what is measured
(the DSR can only remove promotions).
Table 2: with one challenger that is truly better by 0.16 or 0.08 standard deviations of the
daily difference, the day by which 80 % of runs were promoted and the median first promotion,
against the oracle: the fewest days a one-sided t-test at α, told that day in advance, needs for
80 % power (noncentral t).

    python bench/gate_calibration.py --reps 4000 --power-reps 1000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import nct
from scipy.stats import t as student_t

from scorer.ewc import ewc_dof
from scorer.gate import evaluate_gate
from scorer.newey_west import long_run_variance
from scorer.settings import GateSettings
from scorer.superiority import anytime_boundary, group_sequential_boundary

ALPHA, MIN_DAYS, HORIZON, DAYS, RETIRE_DAY, SD = 0.05, 60, 120, 250, 100, 0.01
MODES = ("group_sequential", "anytime", "fixed")
SCENARIOS = ("iid", "ar1 0.3", "student-t 3", "correlated 0.9", "retired at 100")
POWER_TARGET = 1.7  # the anytime mode's target: 80 % power by this multiple of the oracle day
SLACK = 0.01  # the gate is called where the statistic reaches 99 % of its boundary
CHECKED = 3  # screened-out runs per cell closest to a boundary, evaluated unscreened (anytime: 1)


@dataclass
class Cell:
    rate: float
    error: float
    gate_calls: int
    missed: int  # promotions the screen would have lost among the runs checked unscreened


def simulate(scenario: str, k: int, reps: int, days: int, rng: np.random.Generator) -> np.ndarray:
    """[days, reps, k + 1] daily net returns, column 0 the champion; no true difference."""
    shape = (days, reps, k + 1)
    if scenario == "student-t 3":
        noise = rng.standard_t(3, shape) / math.sqrt(3.0)  # unit variance
    else:
        noise = rng.normal(size=shape)
    if scenario == "ar1 0.3":
        for day in range(1, days):
            noise[day] = 0.3 * noise[day - 1] + noise[day]
    if scenario == "correlated 0.9":
        common = rng.normal(size=(days, reps, 1))
        noise = math.sqrt(0.9) * common + math.sqrt(0.1) * noise
    return 0.001 + SD * noise


def boundary_on_mean(mode: str, level: float, day: int, horizon: int) -> float:
    """m'(t): the boundary on d̄ in units of σ̂, exactly as `scorer.superiority` uses it."""
    if mode == "anytime":
        return anytime_boundary(level, horizon, day)
    return group_sequential_boundary(level, MIN_DAYS, horizon, day)


def screen_ratios(
    d: np.ndarray, level: float, horizon: int, modes: tuple[str, ...] = MODES
) -> dict[str, np.ndarray]:
    """Per mode, [days, series]: (d̄_t − δ)/(σ̂_t·m'(t)); the gate passes where it exceeds 1.

    NaN where the mode takes no look (before min_days; group-sequential: after the horizon).
    """
    days = d.shape[0]
    screened = [mode for mode in ("anytime", "group_sequential") if mode in modes]
    ratios = {mode: np.full(d.shape, np.nan) for mode in screened}
    for day in range(MIN_DAYS, days + 1) if screened else ():
        window = d[:day]
        scaled = window.mean(axis=0) / np.sqrt(np.maximum(long_run_variance(window), 0.0))
        if "anytime" in ratios:
            ratios["anytime"][day - 1] = scaled / boundary_on_mean("anytime", level, day, horizon)
        if "group_sequential" in ratios and day <= horizon:
            gs = boundary_on_mean("group_sequential", level, day, horizon)
            ratios["group_sequential"][day - 1] = scaled / gs
    return ratios


def ewc_pvalues(d: np.ndarray) -> np.ndarray:
    """One-sided EWC p-values of every column of `d` [T, series], as `scorer.ewc` computes them."""
    n_days = d.shape[0]
    dof = ewc_dof(n_days)
    j = np.arange(1, dof + 1)[:, None]
    t = np.arange(1, n_days + 1)[None, :]
    projections = math.sqrt(2.0 / n_days) * (np.cos(math.pi * j * (t - 0.5) / n_days) @ d)
    omega = np.mean(projections**2, axis=0)
    statistic = math.sqrt(n_days) * d.mean(axis=0) / np.sqrt(omega)
    return student_t.sf(statistic, dof)


class Run:
    """One simulated run as the gate sees it: frames per version, retired ones stop early."""

    def __init__(self, nets: np.ndarray, until: list[int]):
        index = pd.bdate_range("2024-01-01", periods=nets.shape[0], name="day")
        self.frames = {
            vid: pd.DataFrame({"gross": net, "turnover": 0.0, "cost": 0.0, "net": net}, index=index)
            for vid, net in zip(self.names(nets.shape[1]), nets.T, strict=True)
        }
        self.until = dict(zip(self.names(nets.shape[1])[1:], until, strict=True))

    @staticmethod
    def names(columns: int) -> list[str]:
        return ["champ", *[f"c{i}" for i in range(1, columns)]]

    def decide(self, day: int, settings: GateSettings):
        active = [vid for vid, last in self.until.items() if last >= day]
        retired = [vid for vid, last in self.until.items() if last < day]
        daily = {
            vid: frame.iloc[: min(day, self.until.get(vid, day))]
            for vid, frame in self.frames.items()
        }
        return evaluate_gate(
            daily,
            champion="champ",
            challengers=active,
            tried=retired,
            settings=settings,
            spa_reps=0,
        )


def false_promotions(
    scenario: str, k: int, reps: int, seed: int, modes: tuple[str, ...] = MODES
) -> dict[str, Cell]:
    nets = simulate(scenario, k, reps, DAYS, np.random.default_rng(seed))
    d = (nets[:, :, 1:] - nets[:, :, :1]).reshape(DAYS, reps * k)
    until = [DAYS] + [RETIRE_DAY if scenario.startswith("retired") else DAYS] * (k - 1)
    alive = np.arange(1, DAYS + 1)[:, None] <= np.tile(until, reps)[None, :]
    cells, ratios = {}, screen_ratios(d, ALPHA / k, HORIZON, modes)
    for mode in modes:
        settings = GateSettings(mode=mode, min_dsr=0.0, horizon_days=HORIZON)
        if mode == "fixed":
            closeness = (ALPHA / k) / np.maximum(ewc_pvalues(d[:HORIZON]), 1e-300)
            closeness = closeness.reshape(reps, k).max(axis=1)
            candidate_days = [[DAYS] if c >= 1 - SLACK else [] for c in closeness]
        else:
            by_run = np.where(alive, ratios[mode], np.nan).reshape(DAYS, reps, k)
            by_run = np.nan_to_num(by_run, nan=-np.inf)
            near = by_run.max(axis=2) >= 1 - SLACK  # [days, reps]
            closeness = by_run.max(axis=(0, 2))
            candidate_days = [list(np.flatnonzero(near[:, rep]) + 1) for rep in range(reps)]
        promoted, calls = np.zeros(reps, dtype=bool), 0
        for rep, days in enumerate(candidate_days):
            if not days:
                continue
            run = Run(nets[:, rep, :], until)
            for day in days:
                calls += 1
                if _any_pass(run, day, settings):
                    promoted[rep] = True
                    break
        screened_out = [rep for rep in np.argsort(-closeness) if not candidate_days[rep]]
        missed = 0
        for rep in screened_out[: 1 if mode == "anytime" else CHECKED]:
            run = Run(nets[:, rep, :], until)
            # fixed and group-sequential decisions stand: day 250 reports every earlier look
            looks = range(MIN_DAYS, DAYS + 1) if mode == "anytime" else [DAYS]
            missed += any(_any_pass(run, day, settings) for day in looks)
        rate = float(promoted.mean())
        cells[mode] = Cell(rate, math.sqrt(rate * (1 - rate) / reps), calls, missed)
    return cells


def _any_pass(run: Run, day: int, settings: GateSettings) -> bool:
    return any(report.passed for report in run.decide(day, settings).reports)


def oracle_day(edge: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Fewest days n with P(one-sided t-test at α rejects) ≥ power, effect `edge` sd (exact)."""
    n = 2
    while nct.sf(student_t.isf(alpha, n - 1), n - 1, edge * math.sqrt(n)) < power:
        n += 1
    return n


def time_to_power(
    edge: float, reps: int, seed: int, modes: tuple[str, ...] = MODES
) -> dict[str, tuple]:
    """Per mode: (day of 80 % power, median first promotion, horizon, power by 1.7× the oracle
    day), one challenger, iid days."""
    oracle = oracle_day(edge)
    days = int(1.8 * oracle)
    rng = np.random.default_rng(seed)
    nets = simulate("iid", 1, reps, days, rng)
    nets[:, :, 1] += edge * SD * math.sqrt(2.0)  # the difference has sd SD·√2
    d = nets[:, :, 1] - nets[:, :, 0]
    horizons = {"group_sequential": math.ceil(1.25 * oracle), "anytime": oracle, "fixed": oracle}
    results = {}
    for mode in modes:
        horizon = horizons[mode]
        if mode != "fixed":
            ratios = screen_ratios(d, ALPHA, horizon, (mode,))[mode]
        settings = GateSettings(mode=mode, min_dsr=0.0, horizon_days=horizon)
        first = np.full(reps, np.inf)
        if mode == "fixed":
            passing = ewc_pvalues(d[:horizon]) <= ALPHA
            first[passing] = horizon  # confirmed below with the gate on a sample
            for rep in np.flatnonzero(passing)[:20]:
                assert _any_pass(Run(nets[:, rep, :], [days]), days, settings)
        else:
            for rep in range(reps):
                run = Run(nets[:, rep, :], [days])
                for day in np.flatnonzero(ratios[:, rep] >= 1 - SLACK) + 1:
                    report = run.decide(int(day), settings).reports[0]
                    if report.passed:
                        first[rep] = report.decided_on_day or day
                        break
        by_target = float(np.mean(first <= POWER_TARGET * oracle))
        results[mode] = (_day_reached(first, 0.8), _day_reached(first, 0.5), horizon, by_target)
    return {"oracle": oracle, **results}


def _day_reached(first: np.ndarray, share: float) -> int | None:
    ordered = np.sort(first)
    day = ordered[math.ceil(share * len(ordered)) - 1]
    return int(day) if math.isfinite(day) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="runs per false-promotion cell")
    parser.add_argument("--power-reps", type=int, default=500, help="runs per power case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default="null,power", help="which tables: null, power")
    parser.add_argument(
        "--cases", default=",".join(SCENARIOS), help="false-promotion cases, comma-separated"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="gate modes, comma-separated")
    args = parser.parse_args(argv)
    args.modes = tuple(mode for mode in MODES if mode in args.modes.split(","))
    if not args.modes:
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    started = time.perf_counter()
    if "null" in args.tables:
        _null_table(args)
    if "power" in args.tables:
        _power_table(args)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


def _null_table(args: argparse.Namespace) -> None:
    print(
        f"False promotions, no true difference, checked daily to day {DAYS}; α = {ALPHA}, "
        f"min_days {MIN_DAYS}, horizon {HORIZON}; {args.reps} runs per cell (rate ± 1 s.e.)"
    )
    print(f"{'case':<16} {'k':>3}  " + "  ".join(f"{m:>22}" for m in args.modes))
    worst, missed, calls = 0.0, 0, 0
    chosen = args.cases.split(",")
    for s, scenario in enumerate(SCENARIOS):
        if scenario not in chosen:
            continue
        for k in (1, 5, 10):
            if scenario.startswith("retired") and k == 1:
                continue
            cells = false_promotions(scenario, k, args.reps, args.seed + 100 * s + k, args.modes)
            print(
                f"{scenario:<16} {k:>3}  "
                + "  ".join(f"{cells[m].rate:>14.4f} ± {cells[m].error:.4f}" for m in args.modes),
                flush=True,
            )
            worst = max(worst, *(c.rate - 2 * c.error for c in cells.values()))
            missed += sum(c.missed for c in cells.values())
            calls += sum(c.gate_calls for c in cells.values())
    print(
        f"largest rate less 2 s.e.: {worst:.4f} (target ≤ {ALPHA}); gate calls {calls}; "
        f"screened-out runs checked on every day: {missed} promotion(s) missed"
    )


def _power_table(args: argparse.Namespace) -> None:
    print()
    print(
        f"Time to promotion, one challenger better by an edge (in sd of the daily difference), "
        f"iid days; {args.power_reps} runs per edge"
    )
    print(
        f"{'edge':>6} {'oracle':>7}  {'mode':<17} {'horizon':>7} {'80% power':>10} "
        f"{'ratio':>6} {'median':>7} {'ratio':>6}  power by {POWER_TARGET}× (± 1 s.e.)"
    )
    for e, edge in enumerate((0.16, 0.08)):
        result = time_to_power(edge, args.power_reps, args.seed + 7 + e, args.modes)
        oracle = result["oracle"]
        for mode in args.modes:
            powered, median, horizon, by_target = result[mode]
            error = math.sqrt(by_target * (1 - by_target) / args.power_reps)
            print(
                f"{edge:>6} {oracle:>7}  {mode:<17} {horizon:>7} {_day(powered):>10} "
                f"{_ratio(powered, oracle):>6} {_day(median):>7} {_ratio(median, oracle):>6}  "
                f"{by_target:.3f} ± {error:.3f}",
                flush=True,
            )


def _day(day: int | None) -> str:
    return "never" if day is None else str(day)


def _ratio(day: int | None, oracle: int) -> str:
    return "-" if day is None else f"{day / oracle:.2f}"


if __name__ == "__main__":
    sys.exit(main())
