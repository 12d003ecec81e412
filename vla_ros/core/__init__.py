"""Plain Python + numpy: chunks, playback, safety limits, embodiment specs. No ROS, no torch."""
