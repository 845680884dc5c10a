"""Swarm configuration, node plans and the per-robot agent shared by ROS nodes and the offline runner."""
