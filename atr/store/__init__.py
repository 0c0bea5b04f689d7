"""The stores the line writes: decisions and feedback (prediction_store, SQLAlchemy schema;
its Alembic revisions in migrations/, `atr store upgrade`) and the scanned images
(image_store, s3_images). Serving, labels and the monitor read and write them here; one
rule joins feedback to decisions (feedback_join); retention prunes old unlabelled images
(retention, `atr store prune`). docs/store.md."""
