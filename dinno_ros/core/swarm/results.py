"""
The monitor's results on disk, in the experiment runner's layout (and with its plots).

:class:`ResultsWriter` makes ``[results_dir]/[date]_[name]/`` when the monitor starts (a
``results_dir`` that cannot hold it is an error then, before any round) and writes the configs
there; after every evaluation it rewrites ``[problem_name]_results.pt`` with the results so far,
atomically (a temporary file in the same folder, fsync, rename), so a monitor killed at any point
leaves every evaluated round in a loadable file; at the end it writes the final results and the
plots.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
import tempfile
from typing import Any

from dinno_ros.core.swarm.spec import SwarmSpec
import torch

logger = logging.getLogger(__name__)


class ResultsDirError(ValueError):
    """The results folder cannot be made or written (one line: which path, and why)."""


def check_results_root(root: str | Path, label: str = 'results_dir') -> Path:
    """
    Raise :class:`ResultsDirError` unless ``root`` is, or can be made, a writable folder.

    Creates nothing: the nearest existing folder on the way to ``root`` must be a folder, and one
    this process may write in. ``label`` names the setting in the error.
    """
    root = Path(root)
    for path in (root, *root.absolute().parents):
        if not (path.exists() or path.is_symlink()):
            continue
        where = f'{label}: {root}' if path == root else f'{label}: {root}: {path}'
        if not path.is_dir():
            kind = 'a broken link' if not path.exists() else 'a file'
            raise ResultsDirError(f'{where} is {kind}, not a folder')
        if not os.access(path, os.W_OK | os.X_OK):
            raise ResultsDirError(f'{where} is not writable')
        return root
    return root


def save_atomic(obj: Any, path: str | Path, mode: int = 0o644) -> Path:
    """
    ``torch.save`` ``obj`` to ``path`` so that ``path`` always holds a whole file.

    Written to a temporary file in the same folder, synced to disk, then renamed over ``path``;
    a process killed at any point leaves the old file or the new one (and perhaps the temporary).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            os.fchmod(f.fileno(), mode)
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Sync a folder's entries (the rename) to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode() -> int:
    """Return the mode a new file gets here (0666 less the umask)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


class ResultsWriter:
    """
    The monitor's results folder: made at ``start()``, updated each evaluation, final at the end.

    ``update(results)`` and ``finish(results)`` take :meth:`SwarmMonitor.results`'s dict; the file
    also says ``monitor_finished`` (False until ``finish``), ``alg_name`` and ``source``.
    """

    def __init__(
        self, spec: SwarmSpec, out_root: str | Path | None = None, label: str | None = None
    ) -> None:
        self.spec = spec
        self.root = Path(out_root or spec.section.monitor.results_dir)
        # the setting errors name: the node's parameter, else the config's key
        self.label = label or ('results_dir' if out_root else 'swarm.monitor.results_dir')
        self.out: Path | None = None
        self.updates = 0  # results files written so far
        self._mode = _file_mode()

    @property
    def path(self) -> Path:
        """Return the results file, ``[out]/[problem_name]_results.pt``."""
        if self.out is None:
            raise RuntimeError('ResultsWriter: start() first')
        return self.out / f'{self.spec.pair.problem_name}_results.pt'

    def start(self) -> Path:
        """Make the output folder and write the configs; ResultsDirError when it cannot."""
        from dinno_ros.core.learning.experiment import output_dir_for, write_configs

        exp = self.spec.experiment
        check_results_root(self.root, self.label)
        try:
            while True:
                out = output_dir_for(exp, self.root)
                try:
                    out.mkdir(parents=True)
                    break
                except FileExistsError:  # another run took this name meanwhile
                    if not out.is_dir():
                        raise
            write_configs(exp, out)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsDirError(
                f'{self.label}: {self.root}: cannot write there ({reason})'
            ) from None
        self.out = out
        return out

    def update(self, results: dict[str, Any]) -> Path:
        """Rewrite the results file with the results so far; return its path."""
        self._save({**results, 'monitor_finished': False})
        return self.path

    def finish(self, results: dict[str, Any], plot: bool = True) -> Path:
        """Write the final results, then (``plot``) the plots; return the output folder."""
        from dinno_ros.core.learning import plots

        metrics = self._save({**results, 'monitor_finished': True})
        if not plot:
            return self.out
        try:
            problem = self.spec.experiment.problem
            plots.plot_experiment({self.spec.pair.problem_name: metrics}, self.out, problem)
        except Exception as exc:  # the results are on disk: a plot must not lose them
            logger.error('plots of %s failed: %s: %s', self.out, type(exc).__name__, exc)
        return self.out

    def _save(self, results: dict[str, Any]) -> dict[str, Any]:
        metrics = {**results, 'alg_name': self.spec.pair.alg_name, 'source': 'ros_swarm'}
        save_atomic(metrics, self.path, self._mode)
        self.updates += 1
        return metrics


def write_swarm_results(
    spec: SwarmSpec, metrics: dict[str, Any], out_root: str | Path | None = None
) -> Path:
    """
    Write ``[results_dir]/[date]_[name]/`` in one go.

    With the config, ``[problem_name]_results.pt`` and the plots.
    """
    writer = ResultsWriter(spec, out_root)
    writer.start()
    return writer.finish(metrics)


def write_robot_final(
    spec: SwarmSpec,
    robot_id: int,
    params: torch.Tensor,
    summary: dict[str, Any],
    swarm_id: str,
    out_root: str | Path | None = None,
) -> Path:
    """
    Write a robot's final parameters and summary when no monitor reported its run.

    ``[results_dir]/robots_[swarm id]/robot_[i].pt`` (atomically): ``{'params': ..., 'summary':
    ...}``, loadable with ``torch.load(f, weights_only=True)``.
    """
    root = Path(out_root or spec.section.monitor.results_dir)
    folder = root / f'robots_{"".join(c if c.isalnum() or c in "-_" else "_" for c in swarm_id)}'
    folder.mkdir(parents=True, exist_ok=True)
    return save_atomic(
        {'params': params.detach().cpu(), 'summary': summary}, folder / f'robot_{robot_id}.pt'
    )
