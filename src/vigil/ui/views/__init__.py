"""One module per UI page, each exposing ``render(options)``."""
