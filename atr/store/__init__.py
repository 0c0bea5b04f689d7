"""The stores the line writes: decisions and feedback (prediction_store, SQLAlchemy schema)
and the scanned images (image_store). Serving, labels and the monitor read and write them
here; the production-stack issue adds migrations to this room."""
