"""`infbench run`: the story of one run, one measured run, and repetitions."""
