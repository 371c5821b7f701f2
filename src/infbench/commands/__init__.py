"""What cli.py calls: one module per command (run, repeat, sweep, compare, calibrate, report, show,
cleanup). Only this layer prints, renders or exits; library packages never import it."""
