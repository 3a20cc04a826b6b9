"""A small service used by the tests: it declares one of every resource kind."""
