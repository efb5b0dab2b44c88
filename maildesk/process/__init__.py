"""The runner: claims stored mail, gathers its facts, calls decide(), applies the decision."""
