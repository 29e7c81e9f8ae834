"""`migrate batch`: every model of an archive, in parallel, resumably."""
