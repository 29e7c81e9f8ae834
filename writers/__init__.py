"""Target formats: one package per format, each reads only the common graph."""
