"""Generating the load: the engine (dispatch and stamps), one process, several processes, Ray."""
