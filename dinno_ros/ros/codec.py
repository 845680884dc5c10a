"""
dinno_msgs <-> core conversions: the only place a Weights message meets a tensor.

Robots send and take weights as serialised bytes (``weights_bytes``; parsed with
``dinno_ros.core.weights_cdr.decode_weights``): one copy of the tensor bytes on the way out, none
on the way in. The functions that read a message take a generated ``Weights`` or a
``WeightsFrame`` alike. Building a ``Weights`` uses ``bytes`` into the ``uint8[]`` field
(assigning a numpy array is ~500x slower); parsing uses ``np.frombuffer`` on the received buffer
(see ``dinno_ros.core.wire``).
"""

from __future__ import annotations

import math
from typing import Any

from dinno_msgs.msg import ResendRequest, RobotState, Weights
from dinno_ros.core.learning.round import StateReport
from dinno_ros.core.swarm.auth import canonical_header, SwarmCredentials
from dinno_ros.core.weights_cdr import encode_weights, WeightsFrame
from dinno_ros.core.wire import (
    pack_vector,
    PackedTensors,
    TensorLayout,
    unpack_vector,
    WireError,
)
from geometry_msgs.msg import Pose
import numpy as np
from rclpy.serialization import deserialize_message
import torch


def weights_msg(
    values: torch.Tensor | np.ndarray,
    layout: TensorLayout,
    *,
    sender: int,
    round_k: int,
    degree: int,
    vector: str = Weights.VECTOR_PARAMS,
    stamp=None,
) -> Weights:
    """Pack the flat ``values`` of the optimizer vector named ``vector`` into a Weights message."""
    return packed_weights_msg(
        pack_vector(values, layout),
        sender=sender,
        round_k=round_k,
        degree=degree,
        vector=vector,
        stamp=stamp,
    )


def packed_weights_msg(packed: PackedTensors, **fields: Any) -> Weights:
    """
    Return the message of ``weights_bytes(packed, **fields)`` as a generated Weights.

    For tests and tools; robots publish the bytes.
    """
    return deserialize_message(weights_bytes(packed, **fields), Weights)


def weights_bytes(
    packed: PackedTensors,
    *,
    sender: int,
    round_k: int,
    degree: int,
    vector: str = Weights.VECTOR_PARAMS,
    stamp=None,
    credentials: SwarmCredentials | None = None,
) -> bytes:
    """
    Return the serialised Weights message carrying ``packed`` (to publish as it is).

    With ``credentials``: the swarm id and the MAC of the message.
    """
    frame = WeightsFrame.of(packed, sender, round_k, degree, vector)
    if stamp is not None:
        frame.header.sec, frame.header.nanosec = int(stamp.sec), int(stamp.nanosec)
    if credentials is not None:
        frame.swarm = credentials.swarm_id
        frame.mac = credentials.sign(weights_header(frame), packed.data)
    return encode_weights(frame)


def weights_header(msg: Weights | WeightsFrame) -> bytes:
    """Return what a Weights MAC covers besides ``data``."""
    return canonical_header(
        'weights',
        msg.swarm,
        sender=int(msg.sender),
        round=int(msg.round),
        degree=int(msg.degree),
        vector=msg.vector,
        names=list(msg.names),
        dtypes=list(msg.dtypes),
        ndims=[int(v) for v in msg.ndims],
        shapes=[int(v) for v in msg.shapes],
    )


def state_header(msg: RobotState) -> bytes:
    """Return what a RobotState MAC covers (every field but the header stamp)."""
    p, q = msg.pose.position, msg.pose.orientation
    return canonical_header(
        'state',
        msg.swarm,
        robot_id=int(msg.robot_id),
        round=int(msg.round),
        pose=[p.x, p.y, p.z, q.x, q.y, q.z, q.w],
        neighbors=[int(j) for j in msg.neighbors],
        train_loss=repr(float(msg.train_loss)),
        forward_passes=int(msg.forward_passes),
        dataset_size=int(msg.dataset_size),
        bytes=[int(msg.bytes_sent), int(msg.bytes_received)],
        finished=bool(msg.finished),
        frame=msg.header.frame_id,
    )


def packed_of(msg: Weights | WeightsFrame) -> PackedTensors:
    """Return the tensor fields of a received Weights message (no copy of the data)."""
    if isinstance(msg, WeightsFrame):
        return msg.packed()
    return PackedTensors(
        names=list(msg.names),
        dtypes=list(msg.dtypes),
        ndims=list(msg.ndims),
        shapes=list(msg.shapes),
        data=msg.data,
    )


def values_of(
    msg: Weights | WeightsFrame,
    expected: TensorLayout | None,
    device: torch.device | str = 'cpu',
    max_abs: float | None = None,
) -> torch.Tensor:
    """
    Return the validated flat float32 vector of a received Weights message.

    Raises WireError when malformed (or an entry is beyond ``max_abs``).
    """
    return unpack_vector(packed_of(msg), expected, device=device, max_abs=max_abs)


def values_or_warn(
    msg: Weights | WeightsFrame,
    expected: TensorLayout | None,
    log: Any,
    max_abs: float | None = None,
) -> torch.Tensor | None:
    """Return the validated vector of a received Weights message, or None after a warning."""
    try:
        return values_of(msg, expected, max_abs=max_abs)
    except WireError as exc:
        log.warning(f'ignored weights from robot {msg.sender} round {msg.round}: {exc}')
        return None


def pose_msg(x: float, y: float, yaw: float) -> Pose:
    """Return a planar pose as geometry_msgs/Pose."""
    pose = Pose()
    pose.position.x, pose.position.y = float(x), float(y)
    pose.orientation.z, pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
    return pose


def state_msg(
    robot_id: int,
    state: StateReport,
    stamp=None,
    credentials: SwarmCredentials | None = None,
) -> RobotState:
    """Return the RobotState message of a robot's ``StateReport`` (pose in the map frame)."""
    msg = RobotState()
    msg.header.frame_id = 'map'
    if stamp is not None:
        msg.header.stamp = stamp
    msg.robot_id, msg.round = int(robot_id), int(state.round_k)
    msg.pose = pose_msg(*[float(v) for v in state.pose[:3]])
    msg.neighbors = [int(j) for j in state.neighbors]
    msg.train_loss, msg.forward_passes = float(state.train_loss), int(state.forward_passes)
    msg.dataset_size, msg.finished = int(state.dataset_size), bool(state.finished)
    msg.bytes_sent, msg.bytes_received = int(state.bytes_sent), int(state.bytes_received)
    if credentials is not None:
        msg.swarm = credentials.swarm_id
        msg.mac = credentials.sign(state_header(msg))
    return msg


def resend_header(msg: ResendRequest) -> bytes:
    """Return what a ResendRequest MAC covers (every field but the header stamp)."""
    return canonical_header(
        'resend', msg.swarm, robot=int(msg.robot), rounds=[int(k) for k in msg.rounds]
    )


def resend_msg(
    robot: int, rounds: list[int], stamp=None, credentials: SwarmCredentials | None = None
) -> ResendRequest:
    """Return the monitor's request that ``robot`` send its vectors of ``rounds`` again."""
    msg = ResendRequest(robot=int(robot), rounds=[int(k) for k in rounds])
    if stamp is not None:
        msg.header.stamp = stamp
    if credentials is not None:
        msg.swarm = credentials.swarm_id
        msg.mac = credentials.sign(resend_header(msg))
    return msg
