"""Proving a conversion: comparisons, layer-by-layer verification, reports."""
