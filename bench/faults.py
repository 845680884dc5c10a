#!/usr/bin/env python3
"""
Fault survival: every fault the swarm must survive, run as one benchmark (issue 11).

Runs the suite's tests marked ``fault`` (real processes over real DDS: forged, unsigned and
out-of-range messages, a flood with a 200 MB message, two swarms on one domain, a robot killed
with and without restart, the monitor killed mid-run, signals on the runner, bad inputs at the
door) and reads their JUnit report: a fault is survived when its test passed. Every swarm run's
results folder (``*/results/<date>_<name>/`` under the tests' base temp dir) is then checked: one
without a loadable ``*_results.pt`` is a run whose results were lost.

    .venv/bin/python bench/faults.py [-k EXPR]

Last line: ``faults_survived=<n>/<total> results_lost=<n>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_fault_tests(base: Path, select: str | None) -> Path:
    """Run the ``fault`` tests with their temp dirs under ``base``; return the JUnit report."""
    report = base / 'faults.xml'
    cmd = [sys.executable, '-m', 'pytest', 'tests', '-m', 'fault', '-q', '-p', 'no:cacheprovider']
    cmd += ['--basetemp', str(base / 'tmp'), '--junitxml', str(report)]
    if select:
        cmd += ['-k', select]
    subprocess.run(cmd, cwd=ROOT, check=False)
    return report


def outcomes(report: Path) -> list[tuple[str, str, str, float]]:
    """Return (fault kind, test, outcome, seconds) per test case of the report."""
    rows = []
    for case in ElementTree.parse(report).iter('testcase'):
        props = {p.get('name'): p.get('value') for p in case.iter('property')}
        outcome = 'passed'
        for tag in ('failure', 'error', 'skipped'):
            if case.find(tag) is not None:
                outcome = tag
        rows.append((props.get('fault', '?'), case.get('name'), outcome, float(case.get('time'))))
    return rows


def lost_results(base: Path) -> list[Path]:
    """Return the swarm runs' results folders without a loadable results file."""
    lost = []
    for folder in sorted(base.glob('tmp/**/results/*_*/')):
        if not folder.is_dir() or not (folder / 'experiment_resolved.yaml').exists():
            continue
        files = list(folder.glob('*_results.pt'))
        try:
            ok = bool(files) and all(torch.load(f, weights_only=True) for f in files)
        except Exception:  # noqa: BLE001 (any unreadable file is a lost result)
            ok = False
        if not ok:
            lost.append(folder)
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('-k', dest='select', help='only the fault tests matching this expression')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='dinno_faults_') as tmp:
        base = Path(tmp)
        t0 = time.monotonic()
        rows = outcomes(run_fault_tests(base, args.select))
        lost = lost_results(base)
        print(f'\n{"fault":38} {"outcome":8} {"s":>6}  test')
        for kind, name, outcome, seconds in rows:
            print(f'{kind:38} {outcome:8} {seconds:6.1f}  {name}')
        for folder in lost:
            print(f'results lost: {folder.relative_to(base)}')
        survived = sum(outcome == 'passed' for *_, outcome, _ in rows)
        print(f'{len(rows)} fault runs in {time.monotonic() - t0:.0f} s')
        print(f'faults_survived={survived}/{len(rows)} results_lost={len(lost)}')
        return 0 if rows and survived == len(rows) and not lost else 1


if __name__ == '__main__':
    raise SystemExit(main())
