"""Input transforms (DI) and gradient transforms (TI, MI / NI momentum)."""
