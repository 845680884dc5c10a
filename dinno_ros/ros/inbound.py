"""
Where a robot's or the monitor's messages come in: one subscription per robot topic, size first.

Every ``weights`` and ``state`` subscription takes the serialised bytes (``raw=True``): a message
longer than the receiver's limit (:func:`dinno_ros.core.wire.max_message_bytes`) is counted and
dropped before it is deserialised; the rest become messages for the node's handlers, which pass
them through its :class:`~dinno_ros.core.swarm.auth.MessageGate`. Weights are parsed by
:func:`dinno_ros.core.weights_cdr.decode_weights` (their tensor bytes stay where DDS put them);
bytes that are no Weights message are counted as malformed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from dinno_msgs.msg import RobotState, Weights
from dinno_ros.core.swarm.auth import MessageGate
from dinno_ros.core.weights_cdr import decode_weights
from dinno_ros.core.wire import STATE_MAX_BYTES, WireError
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message

Handler = Callable[[Any, int], None]  # (message, the robot whose topic it came on)


def subscribe_sized(
    node: Node,
    msg_type: type,
    topic: str,
    handler: Callable[[Any], None],
    qos: QoSProfile,
    max_bytes: int,
    on_oversize: Callable[[int], None],
    parse: Callable[[bytes], Any] | None = None,
) -> Any:
    """
    Subscribe to ``topic``; messages over ``max_bytes`` go to ``on_oversize`` unread.

    The rest are parsed by ``parse`` (default: ``deserialize_message`` into ``msg_type``).
    """
    parse = parse or (lambda raw: deserialize_message(raw, msg_type))

    def take(raw: bytes) -> None:
        if len(raw) > max_bytes:
            on_oversize(len(raw))
            return
        handler(parse(raw))

    return node.create_subscription(msg_type, topic, take, qos, raw=True)


def _weights_parser(gate: MessageGate, topic_robot: int) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return decode_weights(raw)
        except WireError as exc:
            gate.malformed('weights', topic_robot, -1, exc)
            return None

    return parse


def subscribe_robots(
    node: Node,
    robots: Iterable[int],
    gate: MessageGate,
    qos: QoSProfile,
    weights_bytes: int,
    on_weights: Handler,
    on_state: Handler,
    weights_topics: tuple[str, ...] = ('weights',),
) -> None:
    """Subscribe to ``/robot_<j>/<weights_topics>`` and ``/robot_<j>/state`` of every robot j."""
    kinds = [(Weights, name, weights_bytes, on_weights) for name in weights_topics]
    kinds.append((RobotState, 'state', STATE_MAX_BYTES, on_state))
    for j in robots:
        for msg_type, name, limit, handler in kinds:
            what = 'state' if msg_type is RobotState else 'weights'
            subscribe_sized(
                node,
                msg_type,
                f'/robot_{j}/{name}',
                lambda msg, j=j, handler=handler: msg is not None and handler(msg, j),
                qos,
                limit,
                lambda size, j=j, what=what, limit=limit: gate.oversized(what, j, size, limit),
                _weights_parser(gate, j) if msg_type is Weights else None,
            )
