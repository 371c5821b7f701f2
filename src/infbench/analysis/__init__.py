"""Figures from results: statistics, metric catalogue, SLO rules, resilience, capacity search.

Reads result directories only; never renders.
"""
