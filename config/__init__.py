"""Settings for wsgate: ``config.defaults`` holds every setting with its default."""
