"""The scenario file: its validated model, how it is read (YAML, ${ENV}, --set), and its secrets."""
