"""The shared functional suite: one set of behaviour tests, one adapter per device family."""
