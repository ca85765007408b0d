"""Transfer Lab's engine: specs, data, models, training. Free of the database and the UI.

Importing this package must stay cheap and torch-free: the web tier imports `backend.specs`.
"""
