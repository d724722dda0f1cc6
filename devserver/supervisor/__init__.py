"""The supervisor: spawns, watches, scales and restarts workers; never imports the user's app."""
