"""ament_pep257 (docstring style) over the package's Python code, as ``colcon test`` runs it."""

from conftest import REPO
import pytest

ament_pep257 = pytest.importorskip('ament_pep257.main', reason='ament_pep257 is not installed')

PATHS = ['dinno_ros', 'launch', 'tests', 'bench', 'scripts', 'setup.py']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = ament_pep257.main(argv=[str(REPO / p) for p in PATHS])
    assert rc == 0, 'Found code style errors / warnings (see the output above)'
