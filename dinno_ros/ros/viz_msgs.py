"""
What a robot shows in RViz: its scan, pose, planned path and markers, in frames RViz knows.

``pose``, ``path`` and ``markers`` are in the ``map`` frame, so RViz shows them with no TF at all.
The ``scan`` (sensor_msgs/LaserScan) is in ``robot_<i>/laser``; where tf2_msgs exists (a ROS
install) the node also broadcasts ``map -> robot_<i>/laser`` on /tf so RViz places it. The markers
repeat the scan's hit points in the map frame for setups without TF.
"""

from __future__ import annotations

import math

from dinno_ros.core.learning.agent import Observation, RobotMotion
from dinno_ros.ros import qos
from dinno_ros.ros.codec import pose_msg
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

try:  # not on PyPI: present in a ROS install only
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the install
    TFMessage = None

PALETTE = [
    (0.89, 0.10, 0.11),
    (0.22, 0.49, 0.72),
    (0.30, 0.69, 0.29),
    (0.60, 0.31, 0.64),
    (1.00, 0.50, 0.00),
    (0.65, 0.34, 0.16),
    (0.97, 0.51, 0.75),
    (0.40, 0.40, 0.40),
]


def robot_colour(robot_id: int) -> ColorRGBA:
    r, g, b = PALETTE[robot_id % len(PALETTE)]
    return ColorRGBA(r=r, g=g, b=b, a=1.0)


def laser_scan(obs: Observation, frame: str, resolution: float, stamp) -> LaserScan:
    """Return an Observation as sensor_msgs/LaserScan (metres; +inf where no return)."""
    msg = LaserScan()
    msg.header.frame_id, msg.header.stamp = frame, stamp
    angles = np.asarray(obs.angles, dtype=np.float64)
    msg.angle_min = float(angles[0])
    msg.angle_increment = float(angles[1] - angles[0]) if len(angles) > 1 else 0.0
    msg.angle_max = float(angles[-1])
    msg.range_min = 0.0
    msg.range_max = float(obs.range_max * resolution)
    msg.ranges = np.asarray(obs.ranges_m(resolution), dtype=np.float32).tolist()
    return msg


class RobotViz:
    """Publishers of one robot's visual topics."""

    def __init__(self, node: Node, robot_id: int, motion: RobotMotion) -> None:
        self.robot_id = robot_id
        self.grid = motion.grid
        self.path_xy = np.asarray(motion.path.xy, dtype=np.float64)
        self.frame = f'robot_{robot_id}/laser'
        self.colour = robot_colour(robot_id)
        self.scan_pub = node.create_publisher(LaserScan, 'scan', qos.sensor())
        self.pose_pub = node.create_publisher(PoseStamped, 'pose', 10)
        self.path_pub = node.create_publisher(Path, 'path', qos.latched())
        self.marker_pub = node.create_publisher(MarkerArray, 'markers', 10)
        self.tf_pub = (
            node.create_publisher(TFMessage, '/tf', 100) if TFMessage is not None else None
        )
        self.path_sent = False

    def publish(self, obs: Observation, stamp) -> None:
        if not self.path_sent:
            self.path_pub.publish(self._path(self.path_xy, stamp))
            self.path_sent = True
        pose = PoseStamped()
        pose.header.frame_id, pose.header.stamp = 'map', stamp
        pose.pose = pose_msg(*obs.pose[:3])
        self.pose_pub.publish(pose)
        if self.tf_pub is not None:
            self.tf_pub.publish(self._tf(obs, stamp))
        self.scan_pub.publish(laser_scan(obs, self.frame, self.grid.resolution, stamp))
        hits = obs.points_world(self.grid)[obs.hit]
        self.marker_pub.publish(self._markers(obs, hits, stamp))

    def _path(self, xy: np.ndarray, stamp) -> Path:
        path = Path()
        path.header.frame_id, path.header.stamp = 'map', stamp
        step = xy[1:] - xy[:-1] if len(xy) > 1 else np.zeros((1, 2))
        yaws = np.append(np.arctan2(step[:, 1], step[:, 0]), 0.0)
        for (x, y), yaw in zip(xy[:: max(1, len(xy) // 500)], yaws[:: max(1, len(xy) // 500)]):
            p = PoseStamped()
            p.header = path.header
            p.pose = pose_msg(x, y, yaw)
            path.poses.append(p)
        return path

    def _tf(self, obs: Observation, stamp):
        t = TransformStamped()
        t.header.frame_id, t.header.stamp, t.child_frame_id = 'map', stamp, self.frame
        t.transform.translation.x, t.transform.translation.y = (
            float(obs.pose[0]),
            float(obs.pose[1]),
        )
        t.transform.rotation.z, t.transform.rotation.w = (
            math.sin(obs.pose[2] / 2),
            math.cos(obs.pose[2] / 2),
        )
        return TFMessage(transforms=[t])

    def _markers(self, obs: Observation, hits: np.ndarray, stamp) -> MarkerArray:
        body = Marker(ns='robots', id=self.robot_id, type=Marker.CYLINDER, action=Marker.ADD)
        body.header.frame_id, body.header.stamp = 'map', stamp
        body.pose = pose_msg(*obs.pose[:3])
        body.scale.x = body.scale.y = 0.4
        body.scale.z = 0.2
        body.color = self.colour
        label = Marker(
            ns='labels', id=self.robot_id, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD
        )
        label.header = body.header
        label.pose = pose_msg(obs.pose[0], obs.pose[1] + 0.5, 0.0)
        label.scale.z = 0.4
        label.color = self.colour
        label.text = f'robot_{self.robot_id}'
        points = Marker(ns='scan_hits', id=self.robot_id, type=Marker.POINTS, action=Marker.ADD)
        points.header = body.header
        points.pose.orientation.w = 1.0
        points.scale.x = points.scale.y = 0.08
        points.color = self.colour
        points.points = [Point(x=float(x), y=float(y), z=0.05) for x, y in hits]
        return MarkerArray(markers=[body, label, points])
