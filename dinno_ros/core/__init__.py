"""
ROS-free core: world (maps, lidar, planner), learning (problems, optimizers), swarm plans.

Nothing under ``dinno_ros.core`` imports rclpy.
"""
