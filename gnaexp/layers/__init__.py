"""Per-layer comparison between any two backends (``gnaexp layers``): accumulated and local error per layer,
the first diverging layer, dumps that travel between machines. Schema of the result: ``gnaexp.layers.results``."""
