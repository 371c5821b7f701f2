"""Observers: what the server and the machine did during a run (server metrics, process CPU/RSS,
the cluster's events), each sampled off the load's path."""
