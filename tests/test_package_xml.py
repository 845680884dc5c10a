"""package.xml declares exactly what the package's code imports, under valid rosdep keys."""

import ast
import sys
import xml.etree.ElementTree as ElementTree

from conftest import REPO

# top-level module -> the rosdep key (or ROS package) that provides it
ROSDEP_KEYS = {
    'PIL': 'python3-pil',
    'ament_index_python': 'ament_index_python',
    'cv2': 'python3-opencv',
    'dinno_msgs': 'dinno_msgs',
    'geometry_msgs': 'geometry_msgs',
    'launch': 'launch',
    'launch_ros': 'launch_ros',
    'matplotlib': 'python3-matplotlib',
    'nav_msgs': 'nav_msgs',
    'networkx': 'python3-networkx',
    'numba': 'python3-numba',
    'numpy': 'python3-numpy',
    'rclpy': 'rclpy',
    'sensor_msgs': 'sensor_msgs',
    'std_msgs': 'std_msgs',
    'tf2_msgs': 'tf2_msgs',
    'torch': 'python3-torch',
    'torchvision': 'python3-torchvision',
    'tqdm': 'python3-tqdm',
    'visualization_msgs': 'visualization_msgs',
    'yaml': 'python3-yaml',
}
NOT_IMPORTED = {'rviz2'}  # started by swarm.launch.py rviz:=true


def imported_modules() -> set[str]:
    modules = set()
    for folder in ('dinno_ros', 'launch'):
        for path in (REPO / folder).rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split('.')[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split('.')[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != 'dinno_ros'}


def test_exec_depends_are_exactly_the_imports():
    modules = imported_modules()
    unknown = modules - set(ROSDEP_KEYS)
    assert not unknown, f'add the rosdep key of {sorted(unknown)} to ROSDEP_KEYS and package.xml'
    root = ElementTree.parse(REPO / 'package.xml').getroot()
    declared = {e.text for e in root.findall('exec_depend')}
    needed = {ROSDEP_KEYS[m] for m in modules} | NOT_IMPORTED
    assert declared == needed, (
        f'missing: {sorted(needed - declared)}, unused: {sorted(declared - needed)}'
    )
