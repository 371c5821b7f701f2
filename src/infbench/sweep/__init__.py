"""`infbench sweep` and `infbench calibrate`: many runs of one scenario and their summary."""
