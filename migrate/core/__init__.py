"""The format-agnostic core: the common graph, errors, registries, content tests, passes."""
