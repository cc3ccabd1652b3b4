"""Base attacks, one file per method: its settings, its loss and its registry declaration (``METHODS``)."""
