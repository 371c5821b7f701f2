"""Load generation on a Ray cluster (``client.engine: ray``), merged like local processes.

Actor k of N runs exactly what generator process k of N runs (``load/processes.py``): its slice
of the schedule through ``load.local.run_local``, writing an interval log and raw rows. Actors
may be on other hosts, so each returns those files' bytes and its tallies to the driver,
which merges them with the same functions as a multi-process run into one result directory.

One start for all: the driver measures each actor's wall-clock offset (a few round trips; the
sample with the smallest round-trip time wins, its error is at most half that time), then
sends each actor the common start as a wall-clock time on the actor's own clock, which the
actor turns into a monotonic instant. Lag and latency are measured within one host's
monotonic clock and are not touched by the offset; only the alignment of the actors' seconds
and rows depends on it.

Per-second figures for the live view and timeseries.csv come through a Ray queue. An actor
that dies mid-run takes its partial results with it: its slice's scheduled arrivals are
counted as dropped (the run is then invalid) and a warning names it.
"""
