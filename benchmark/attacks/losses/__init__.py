"""Pixel losses: (logits, labels, ctx) -> (N, H, W) loss map, 0 at ignored pixels."""
