"""The floorplan world: grids, map files, lidar, planner, datasets."""
