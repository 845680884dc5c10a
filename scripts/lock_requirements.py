"""
Write requirements-lock.txt: the installed closure of requirements.txt, installable from PyPI.

The ROS 2 wheels (``ros-std-msgs``) carry the egg-info of the ament package inside (``std_msgs``),
which ``pip freeze`` lists too; those inner names are not PyPI projects, so they are left out. So
are the launch stack's wheels (not on PyPI either: make setup installs them from
../shared/vendor/ros2-launch).
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

VENDORED = {
    'composition-interfaces',
    'launch',
    'launch-pytest',
    'launch-ros',
    'launch-testing',
    'launch-testing-ros',
    'launch-xml',
    'launch-yaml',
    'ros2cli',
    'ros2interface',
    'ros2launch',
    'ros2node',
    'ros2param',
    'ros2pkg',
    'ros2run',
    'ros2service',
    'ros2topic',
    'rosidl-runtime-py',
}


def norm(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def main() -> int:
    frozen = subprocess.run(
        [sys.executable, '-m', 'pip', 'freeze', '--exclude-editable'],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    pins = {norm(line.split('==')[0]): line for line in frozen if '==' in line}
    keep = [
        line
        for name, line in sorted(pins.items())
        if not name.startswith('dinno') and f'ros-{name}' not in pins and name not in VENDORED
    ]
    import setuptools

    keep.append(f'setuptools=={setuptools.__version__}')
    header = (
        '# Full pinned closure of requirements.txt (regenerate: make lock). '
        'Installed by make setup.\n'
    )
    Path('requirements-lock.txt').write_text(header + '\n'.join(keep) + '\n')
    print(f'requirements-lock.txt: {len(keep)} pins')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
