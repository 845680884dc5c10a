"""
The RViz 2 config of a swarm.

Map, learned map, metrics text and every robot's scan, path, pose, markers.

``rviz/swarm.rviz`` is this file's output for 4 robots
(``python -m dinno_ros.tools.rviz_config 4 > rviz/swarm.rviz``); the launch file writes one for the
actual number of robots. ``expected_topics`` lists each display's (topic, message type): the tests
compare it with a live swarm.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import yaml

# display class -> message type it shows
DISPLAY_TYPES = {
    'rviz_default_plugins/Map': 'nav_msgs/msg/OccupancyGrid',
    'rviz_default_plugins/LaserScan': 'sensor_msgs/msg/LaserScan',
    'rviz_default_plugins/Path': 'nav_msgs/msg/Path',
    'rviz_default_plugins/Pose': 'geometry_msgs/msg/PoseStamped',
    'rviz_default_plugins/MarkerArray': 'visualization_msgs/msg/MarkerArray',
}
PALETTE = [
    '228; 26; 28',
    '55; 126; 184',
    '77; 175; 74',
    '152; 78; 163',
    '255; 127; 0',
    '166; 86; 40',
    '247; 129; 191',
    '102; 102; 102',
]
RELIABLE_LATCHED = {
    'Depth': 1,
    'Durability Policy': 'Transient Local',
    'History Policy': 'Keep Last',
    'Reliability Policy': 'Reliable',
}
SENSOR = {
    'Depth': 5,
    'Durability Policy': 'Volatile',
    'History Policy': 'Keep Last',
    'Reliability Policy': 'Best Effort',
}
DEFAULT = {
    'Depth': 10,
    'Durability Policy': 'Volatile',
    'History Policy': 'Keep Last',
    'Reliability Policy': 'Reliable',
}


def _display(cls: str, name: str, topic: str, qos: dict, **extra) -> dict:
    return {
        'Class': cls,
        'Enabled': True,
        'Name': name,
        'Topic': {'Value': topic, **qos},
        'Value': True,
        **extra,
    }


def robot_displays(i: int) -> list[dict]:
    colour = PALETTE[i % len(PALETTE)]
    ns = f'/robot_{i}'
    return [
        _display(
            'rviz_default_plugins/LaserScan',
            f'robot_{i} scan',
            f'{ns}/scan',
            SENSOR,
            **{
                'Color': colour,
                'Color Transformer': 'FlatColor',
                'Size (m)': 0.08,
                'Style': 'Flat Squares',
            },
        ),
        _display(
            'rviz_default_plugins/Path',
            f'robot_{i} path',
            f'{ns}/path',
            RELIABLE_LATCHED,
            **{'Color': colour, 'Line Style': 'Lines', 'Alpha': 0.6},
        ),
        _display(
            'rviz_default_plugins/Pose',
            f'robot_{i} pose',
            f'{ns}/pose',
            DEFAULT,
            **{'Color': colour, 'Shape': 'Arrow', 'Shaft Length': 0.5, 'Head Length': 0.2},
        ),
        _display(
            'rviz_default_plugins/MarkerArray', f'robot_{i} markers', f'{ns}/markers', DEFAULT
        ),
    ]


def swarm_rviz(num_robots: int) -> dict:
    displays = [
        {
            'Class': 'rviz_default_plugins/Grid',
            'Enabled': True,
            'Name': 'Grid',
            'Cell Size': 1,
            'Plane Cell Count': 40,
            'Reference Frame': '<Fixed Frame>',
            'Value': True,
        },
        _display(
            'rviz_default_plugins/Map',
            'true map',
            '/map',
            RELIABLE_LATCHED,
            **{'Alpha': 0.8, 'Color Scheme': 'map', 'Draw Behind': True},
        ),
        _display(
            'rviz_default_plugins/Map',
            'learned map',
            '/swarm/learned_map',
            RELIABLE_LATCHED,
            **{'Alpha': 0.5, 'Color Scheme': 'costmap', 'Draw Behind': False},
        ),
        _display('rviz_default_plugins/MarkerArray', 'metrics', '/swarm/markers', DEFAULT),
    ]
    for i in range(num_robots):
        displays += robot_displays(i)
    return {
        'Panels': [
            {
                'Class': 'rviz_common/Displays',
                'Name': 'Displays',
                'Help Height': 78,
                'Tree Height': 600,
            },
            {'Class': 'rviz_common/Views', 'Name': 'Views'},
        ],
        'Visualization Manager': {
            'Class': '',
            'Displays': displays,
            'Enabled': True,
            'Global Options': {
                'Background Color': '48; 48; 48',
                'Fixed Frame': 'map',
                'Frame Rate': 30,
            },
            'Name': 'root',
            'Tools': [
                {'Class': 'rviz_default_plugins/MoveCamera'},
                {'Class': 'rviz_default_plugins/Select'},
            ],
            'Views': {
                'Current': {
                    'Class': 'rviz_default_plugins/TopDownOrtho',
                    'Name': 'Current View',
                    'Scale': 30,
                    'X': 12,
                    'Y': 8,
                    'Target Frame': '<Fixed Frame>',
                }
            },
        },
        'Window Geometry': {'Height': 900, 'Width': 1400},
    }


def expected_topics(rviz: dict) -> dict[str, str]:
    """(topic -> message type) of every display in an RViz config."""
    out = {}
    for d in rviz['Visualization Manager']['Displays']:
        if d['Class'] in DISPLAY_TYPES:
            out[d['Topic']['Value']] = DISPLAY_TYPES[d['Class']]
    return out


def write_rviz(num_robots: int, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(dump(num_robots))
    return path


def dump(num_robots: int) -> str:
    return '# generated by: python -m dinno_ros.tools.rviz_config %d\n%s' % (
        num_robots,
        yaml.safe_dump(swarm_rviz(num_robots), sort_keys=False),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('num_robots', type=int, nargs='?', default=4)
    args = parser.parse_args(argv)
    sys.stdout.write(dump(args.num_robots))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
