"""Studies from the literature, each expanded into a plan of jobs."""
