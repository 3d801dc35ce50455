"""avctl: control and manage fleets of meeting-room devices over their REST APIs."""

__version__ = "0.1.0"
