"""
Point the ROS wheels' CMake exports at this venv's Python and numpy headers (idempotent).

The PyPI wheels of ROS 2 Kilted hard-code the include dirs of the machine that built them
(``/opt/python/cpXY-cpXY/include/python3.X`` and its numpy) in
``share/*/cmake/*__rosidl_generator_pyExport.cmake``; CMake then refuses the imported targets.
"""

from __future__ import annotations

from pathlib import Path
import re
import sys
import sysconfig

import numpy

PY_INCLUDE = re.compile(r'/opt/python/cp\d+-cp\d+/include/python3\.\d+')
NUMPY_INCLUDE = re.compile(
    r'/opt/python/cp\d+-cp\d+/lib/python3\.\d+/site-packages/numpy/_core/include'
)


def fix(venv: Path) -> int:
    """Rewrite every export file under ``venv/share``; return how many changed."""
    changed = 0
    for path in venv.glob('share/*/cmake/*__rosidl_generator_pyExport.cmake'):
        text = path.read_text()
        new = NUMPY_INCLUDE.sub(numpy.get_include(), text)
        new = PY_INCLUDE.sub(sysconfig.get_paths()['include'], new)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == '__main__':
    n = fix(Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
    if n:
        print(f'[setup] patched {n} ROS CMake export files')
