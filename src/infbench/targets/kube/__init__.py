"""The ``kubernetes`` target: a Service in a cluster, its pods' faults and events."""
