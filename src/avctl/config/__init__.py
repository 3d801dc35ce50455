"""Configuration as desired state: snapshots (backup), desired values from the inventory, plan,
apply with read-back, drift and restore. See docs/config.md.

Data flow: inventory ``config:`` blocks (`avctl.fleet.config_blocks`) -> per-device desired values
checked against the family's catalogue (the spec's Variables) -> a read of the device's current
configuration through its family's config codec -> a plan of differences -> grouped writes ->
read-back. Snapshots are kept in the job database (`avctl.config.store`).
"""
