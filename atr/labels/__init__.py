"""Labels from the frontline: the label queue (which items an analyst should see next),
Label Studio export/import, and frontline batches (labelled items as a training source)."""
