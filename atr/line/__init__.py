"""`atr line`: a simulated scanner line that streams parcels to a running ATR service.

plan      which parcels, from which scanner and class mix, in which phase (drift drills)
parcels   renders and PNG-encodes every parcel before the clock starts
replay    reads a dataset folder's real scans instead (a replay phase), with its truth
sender    fires HTTP requests open-loop on a fixed schedule, or closed-loop with N workers
metrics   latency percentiles and decisions vs truth, per phase
feedback  inspection / analyst verdicts for the items the line routed to humans
run       the job: `simulate(cfg)` (everything, records included) and `run(cfg)` (the CLI)
"""
