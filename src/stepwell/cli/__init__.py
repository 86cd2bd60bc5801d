"""The ``stepwell`` command: thin commands over the engine and the REST client."""
