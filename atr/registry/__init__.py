"""MLflow side of ATR: tracking setup, lineage, registration, aliases, gate, approval.

See atr/registry/README.md for the flow (register -> @challenger -> gate -> approve ->
@champion) and the tags each step writes.
"""
