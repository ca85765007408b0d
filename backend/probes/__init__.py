"""Probes: measurements of trained networks (similarity, curvature), plain functions over modules
and tensors. A probe job (backend.jobs) loads the networks and the probe images and calls these."""
