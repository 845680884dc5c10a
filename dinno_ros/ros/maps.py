"""
Maps as nav_msgs/OccupancyGrid: the true floorplan and the learned density.

Row 0 is at the bottom.
"""

from __future__ import annotations

from dinno_ros.core.world.grid import GridMap
from nav_msgs.msg import OccupancyGrid
import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

__all__ = ['OccupancyGrid', 'occupancy_msg', 'density_msg', 'metrics_text']


def _grid_msg(
    values: np.ndarray, resolution: float, origin_xy: tuple[float, float], stamp
) -> OccupancyGrid:
    """
    ``values`` int8 image -> OccupancyGrid.

    The image has row 0 at the top (as the PNG), the OccupancyGrid row 0 at the bottom.
    """
    msg = OccupancyGrid()
    msg.header.frame_id, msg.header.stamp = 'map', stamp
    msg.info.resolution = float(resolution)
    msg.info.height, msg.info.width = int(values.shape[0]), int(values.shape[1])
    msg.info.origin.position.x, msg.info.origin.position.y = (
        float(origin_xy[0]),
        float(origin_xy[1]),
    )
    msg.info.origin.orientation.w = 1.0
    msg.data = np.ascontiguousarray(values[::-1]).astype(np.int8).ravel().tolist()
    return msg


def occupancy_msg(grid: GridMap, stamp) -> OccupancyGrid:
    """Return the true map: 100 occupied, 0 free, -1 unknown (outside the building)."""
    values = np.where(grid.occupied, 100, 0).astype(np.int8)
    if grid.unknown is not None:
        values[grid.unknown] = -1
    return _grid_msg(values, grid.resolution, grid.origin[:2], stamp)


def density_msg(density: np.ndarray, grid: GridMap, stride: int, stamp) -> OccupancyGrid:
    """Return the learned occupancy probability on the mesh (every ``stride`` pixels) as 0..100."""
    values = np.clip(np.rint(100.0 * np.asarray(density, dtype=np.float64)), 0, 100).astype(
        np.int8
    )
    h, w = values.shape
    # mesh cell (r, c) covers pixels [r*stride, (r+1)*stride): its bottom edge in world metres
    bottom = grid.origin[1] + (grid.height - h * stride) * grid.resolution
    return _grid_msg(values, grid.resolution * stride, (grid.origin[0], bottom), stamp)


def metrics_text(text: str, grid: GridMap | None, stamp) -> MarkerArray:
    """Return the monitor's latest line as a text marker above the map's top-left corner."""
    marker = Marker(ns='metrics', id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=text)
    marker.header.frame_id, marker.header.stamp = 'map', stamp
    if grid is not None:
        marker.pose.position.x = grid.origin[0] + 0.5 * grid.width * grid.resolution
        marker.pose.position.y = grid.origin[1] + grid.height * grid.resolution + 1.0
    marker.pose.orientation.w = 1.0
    marker.scale.z = 0.6
    marker.color.r = marker.color.g = marker.color.b = marker.color.a = 1.0
    return MarkerArray(markers=[marker])
