"""Pure-Python implementations kept as oracles for the native core (cleanroom._native)."""
