"""Modifiers joined with ``+``, one file per method: its settings, its part and its declaration (``METHODS``)."""
