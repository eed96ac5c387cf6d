"""Graph assembly: one composite PTransform per pipeline, options and the CLI entry point."""
