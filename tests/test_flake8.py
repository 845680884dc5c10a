"""ament_flake8 over the package's Python code, as ``colcon test`` runs it in a ROS 2 workspace."""

from conftest import REPO
import pytest

ament_flake8 = pytest.importorskip('ament_flake8.main', reason='ament_flake8 is not installed')

PATHS = ['dinno_ros', 'launch', 'tests', 'bench', 'scripts', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = ament_flake8.main_with_errors(argv=[str(REPO / p) for p in PATHS])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
