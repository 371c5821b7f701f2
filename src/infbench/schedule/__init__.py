"""Schedules: when each request is due. Pure maths on seeded generators; no clock, no socket."""
