"""The embedded scaler (AIScaler): spec parsing, the pure decision and GPU feasibility.

The controller that reads metrics, writes /scale and reports status will live here too; these
modules are its pure core (no client imports), shared with bench/scaler_sim.py.
"""
