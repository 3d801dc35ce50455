"""Fleet operations: inventory, credentials, job store, audit log and the fleet runner.

Everything here sits on top of the single-device core (`avctl.device`); nothing in this package
knows a family by name: family differences come from the specs (Feedbacks, Macros, Transport).
"""
