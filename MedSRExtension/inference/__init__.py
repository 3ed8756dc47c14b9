"""Running a model over a volume: the engine, exact tiling and devices."""
