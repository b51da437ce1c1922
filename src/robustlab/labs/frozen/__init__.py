"""Frozen-features lab: frozen DINOv2-architecture tokens, one attention layer, panel area from attention."""
