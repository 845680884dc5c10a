"""ROS 2 adapters: nodes and message conversions (the only place rclpy is imported)."""
