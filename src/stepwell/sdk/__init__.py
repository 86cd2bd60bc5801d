"""The function author's side: apps, functions, triggers, steps. Never imports the engine."""
