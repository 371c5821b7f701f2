"""`infbench compare`: two result directories into a Comparison, its warnings and the gate."""
