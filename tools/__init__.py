"""Developer tools for gptviz that are not part of the app (e.g. `python -m tools.loadtest`)."""
