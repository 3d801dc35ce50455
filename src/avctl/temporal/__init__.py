"""Many sites: fleet jobs as Temporal workflows, avctl itself as the worker at each site.

The data flow (docs/temporal.md):

- the control plane (the CLI with ``--engine temporal``, the server, ``avctl worker --control``)
  records the job in its store, resolves the selection centrally and starts a ``FleetJob``
  workflow (``avctl.temporal.workflows``) with the selected devices, grouped by site: names,
  addresses and password *references*, never a password;
- the workflow runs one ``SiteJob`` child workflow per site; it hands the site's devices in
  batches to an activity on the site's task queue (``site.NAME``), which an ``avctl worker --site
  NAME`` at that site takes: it connects out to Temporal, resolves the references with its own
  secrets and runs the batch with the fleet runner (``avctl.temporal.site``);
- each batch's outcomes and audit rows come back through Temporal and are written to the
  control plane's store by a control activity (``avctl.temporal.control``) exactly once.

``temporalio`` is an optional dependency (``pip install avctl[temporal]``): only this package
imports it, and only the commands that use it import this package.
"""
