"""Property-based tests of each service's API against its own OpenAPI document."""
