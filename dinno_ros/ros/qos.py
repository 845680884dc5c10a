"""QoS profiles chosen on purpose for each kind of topic."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    qos_profile_sensor_data,
    QoSProfile,
    ReliabilityPolicy,
)

# A receiver may fall this many messages behind a sender before losing one: rounds are synchronous,
# so a robot is at most a round or two ahead of a neighbour (two vectors each for DSGT).
ROUND_DEPTH = 32
MONITOR_DEPTH = 1000


def reliable_history(depth: int) -> QoSProfile:
    """Return a reliable, transient-local QoS keeping the last ``depth`` messages."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def weights() -> QoSProfile:
    """
    Optimizer vectors: must not be lost.

    Late joiners get the recent rounds (transient local).
    """
    return reliable_history(ROUND_DEPTH)


def state() -> QoSProfile:
    """
    Robot states (positions build the disk graph).

    Reliable, recent rounds kept for late joiners.
    """
    return weights()


def monitor_inbox() -> QoSProfile:
    """
    Return the QoS of the monitor's side of ``weights``/``state``.

    It may be busy evaluating for many rounds, so its reader history (filled by the DDS layer, not
    by Python) is deep enough that nothing is lost meanwhile.
    """
    return reliable_history(MONITOR_DEPTH)


def latched() -> QoSProfile:
    """
    Return the QoS of data that changes rarely (a planned path, the learned map).

    Keeps the last one for every late joiner.
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def metrics() -> QoSProfile:
    """
    Return the QoS of /swarm/metrics: the last 100 reports reach a late subscriber too.

    Transient local: a volatile reader (RViz, ``ros2 topic echo``) still matches.
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def requests() -> QoSProfile:
    """Return the QoS of the monitor's requests to send vectors again: reliable, volatile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def sensor() -> QoSProfile:
    """
    Return the QoS of scans.

    Best effort, shallow (qos_profile_sensor_data), as RViz and nav2 expect.
    """
    return qos_profile_sensor_data
