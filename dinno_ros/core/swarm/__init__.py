"""
Swarm configuration, node plans and the per-robot agent.

They are shared by the ROS nodes and the offline runner.
"""
