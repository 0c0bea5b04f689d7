"""The real-archive loop (`atr archive-demo`): a customs office's own dual-energy archive
through ATR end to end, and a new real scanner that the monitor must flag.

checkout  a working copy of the repository whose params.yaml names the import alone
crops     a new scanner's single-energy scans -> a replayable dataset of crops
demo      the job: import -> dvc repro -> gate -> approve -> serve -> replay -> monitor
"""
