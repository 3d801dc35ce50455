"""The desired configuration as written in an inventory: ``config:`` blocks, before any checking
against a family's catalogue.

A ``config:`` block may stand at every level of an inventory (``defaults``, a site, a group, a
device) and may name template files (``templates: [baselines/secure.yaml]``, relative to the
inventory). Its keys are family names, each mapping configuration keys to desired values::

    defaults:
      config:
        templates: [baselines/wireless-off.yaml]
        videoos:
          cast.airplay.enabled: "False"
        solstice:
          sharing.airplay.enabled: false

The inventory keeps each block with the file and line of every value (`DesiredValue.where`), so a
value the family's catalogue refuses is reported as ``file:line`` before any device is contacted.
What the values mean is decided by `avctl.config` (the catalogue of each family's spec).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: a family name, as written in ``family:`` and as a key of a ``config:`` block
FAMILY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DesiredValue:
    """One desired value as written (``${room}`` references not yet filled in) and where."""

    value: Any
    #: "file:line" of the value
    where: str


#: family name -> configuration key -> desired value
FamilyValues = Mapping[str, Mapping[str, DesiredValue]]


@dataclass(frozen=True)
class ConfigBlock:
    """One ``config:`` block or one template file it names, as seen by one device."""

    #: for messages: "defaults", "site hq", "group lobby", "device hq-101",
    #: "template baselines/secure.yaml (from site hq)"
    level: str
    #: family name -> configuration key -> desired value
    families: FamilyValues
    #: "file:line" of the block (or of the template file's first line)
    where: str = ""

    def for_family(self, family: str) -> Mapping[str, DesiredValue]:
        return self.families.get(family, {})
