"""dinno_ros: a ROS 2 swarm of simulated robots that learn together (DiNNO, DSGD, DSGT)."""

__version__ = '0.1.0'
