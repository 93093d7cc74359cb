"""Benchmarks and reusable harnesses (virtual microphone, soak, fuzzing); not installed with the package."""
