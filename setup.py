"""
ament_python package setup for dinno_ros.

For colcon build, or pip install for the pip-only mode.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'dinno_ros'


def share(folder: str, pattern: str = '*') -> tuple[str, list[str]]:
    return (
        f'share/{PACKAGE}/{folder}',
        [f for f in glob(f'{folder}/{pattern}') if '.' in f.rsplit('/', 1)[-1]],
    )


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        share('launch', '*.py'),
        share('config', '*.yaml'),
        share('config/experiments', '*.yaml'),
        share('config/dds', '*.xml'),
        share('maps'),
        share('rviz', '*.rviz'),
    ],
    install_requires=['setuptools'],
    extras_require={'test': ['pytest']},
    zip_safe=False,
    maintainer='dinno_ros developers',
    maintainer_email='dinno-ros@example.org',
    description='A ROS 2 swarm of simulated robots that learn together (DiNNO, DSGD, DSGT).',
    license='MIT',
    entry_points={
        'console_scripts': [
            # ROS nodes (ros2 run dinno_ros robot_node / monitor_node; launch Node(executable=...))
            'robot_node = dinno_ros.ros.robot_node:main',
            'robots_node = dinno_ros.ros.robots_node:main',
            'monitor_node = dinno_ros.ros.monitor_node:main',
            'viz_node = dinno_ros.ros.viz_node:main',
            # user tools
            'dinno-swarm = dinno_ros.swarm:main',
            'dinno-map = dinno_ros.tools.map_cli:main',
            'dinno-experiment = dinno_ros.tools.experiment_cli:main',
        ],
    },
)
