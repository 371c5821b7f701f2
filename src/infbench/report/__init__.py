"""Views of a RunResult or a Comparison: console (rich), markdown, json, html."""
