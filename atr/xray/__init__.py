"""Dual-energy X-ray simulation of postal items (physics, scenes, scanner profiles)."""

from atr.xray.class_mix import ClassMix
from atr.xray.scanner_profile import ScannerProfile, load_profile
from atr.xray.simulator import GENERATOR_VERSION, SimulatedItem, XraySimulator

__all__ = ["GENERATOR_VERSION", "ClassMix", "ScannerProfile", "SimulatedItem", "XraySimulator",
           "load_profile"]
