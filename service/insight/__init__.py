"""Insight: which articles and campaigns bring readers and clients, counted in aggregate, never per person."""
