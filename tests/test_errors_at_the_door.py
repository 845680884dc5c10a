"""
Bad input is refused in one line before anything runs (issue 11, item 7).

Invalid YAML, a swarm config given to ``dinno-experiment``, a map whose image is missing,
truncated or not an image, and a ``dinno-map --name`` that would write outside ``--out``.
"""

from __future__ import annotations

from pathlib import Path

from conftest import CONFIGS
from dinno_ros.core.learning.experiment_config import load_experiment
from dinno_ros.core.swarm.spec import load_swarm
from dinno_ros.tools.experiment_cli import main as experiment_main
from dinno_ros.tools.map_cli import main as map_main
import pytest
import yaml


@pytest.mark.fault('invalid YAML at the door')
@pytest.mark.parametrize('text', ['experiment: [\n  bad', 'a: b\n c: d\n', '\tx: 1\n'])
def test_invalid_yaml_is_one_line_and_exit_2(tmp_path: Path, capsys, text: str) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    assert experiment_main([str(path), '--no-progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'dinno-experiment: error: {path}: not valid YAML: ') and '\n' not in err
    assert 'line ' in err
    with pytest.raises(ValueError, match='not valid YAML'):
        load_swarm(path)


def test_a_swarm_config_runs_offline_without_its_swarm_section() -> None:
    config = load_experiment(CONFIGS / 'tiny_swarm.yaml')
    assert config.pairs and config.graph.num_nodes


def map_swarm(folder: Path, kind: str | None = None) -> Path:
    """Write a swarm config on a generated map, its image then made ``kind`` (None: good)."""
    assert map_main(['generate', '--out', str(folder), '--name', 'plan']) == 0
    png = folder / 'plan.png'
    if kind == 'missing':
        png.unlink()
    elif kind == 'truncated':
        png.write_bytes(png.read_bytes()[:100])
    elif kind == 'not an image':
        png.write_bytes(b'not an image')
    data = yaml.safe_load((CONFIGS / 'tiny_swarm.yaml').read_text())
    data['experiment']['map'] = {'path': str(folder / 'plan.yaml')}
    path = folder / 'swarm.yaml'
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.fault('bad map image at the door')
@pytest.mark.parametrize('kind', ['missing', 'truncated', 'not an image'])
def test_a_bad_map_image_is_refused_before_any_node_starts(tmp_path: Path, kind: str) -> None:
    load_swarm(map_swarm(tmp_path / 'good'))  # the generated map itself loads
    with pytest.raises(ValueError, match=r'experiment\.map\.path: .*plan\.yaml: .*image'):
        load_swarm(map_swarm(tmp_path / 'bad', kind))


@pytest.mark.fault('map name escaping --out')
@pytest.mark.parametrize('name', ['../../x', 'sub/x', '.hidden', '/tmp/x', '..'])
def test_map_name_cannot_leave_out(tmp_path: Path, capsys, name: str) -> None:
    out = tmp_path / 'a' / 'b'
    assert map_main(['generate', '--out', str(out), '--name', name]) == 2
    assert '--name: ' in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob('*') if p.is_file()]


def test_an_unknown_executor_names_the_variable_and_the_allowed_values(monkeypatch) -> None:
    lifecycle = pytest.importorskip('dinno_ros.ros.lifecycle', reason='rclpy not installed')
    monkeypatch.setenv('DINNO_EXECUTOR', 'multi')
    allowed = "DINNO_EXECUTOR: 'multi' not allowed; allowed: events, single"
    with pytest.raises(lifecycle.NodeStartError, match=allowed):
        lifecycle.make_executor()
