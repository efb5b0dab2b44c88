"""Processing of stored mail: pure stages (parse, classify, thread, decide) and the runner."""
