"""Schedules: fleet and config commands run on a cron expression in each site's time zone.

(issue 13; see docs/schedules.md)
"""
