"""Graph passes on the common graph."""
