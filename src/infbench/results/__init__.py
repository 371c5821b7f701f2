"""The result directory (format v1): run.json records, the interval log, raw rows, environment."""
