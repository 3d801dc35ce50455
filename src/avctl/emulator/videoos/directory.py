"""The directory of an emulated VideoOS system: local entries (read/write), a read-only global
(LDAP-like) server, favorites with an order, group members, and paged asynchronous queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from avctl.emulator.videoos.files import TEXT_FIELDS

#: entries the local directory can hold before it answers 507 Insufficient Storage
LOCAL_CAPACITY = 2000


@dataclass
class Entry:
    id: str
    server_id: str
    type: str = "SINGLE"
    fields: dict[str, str] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    favorite: bool = False
    members: list[str] = field(default_factory=list)
    read_only: bool = False

    @property
    def display_name(self) -> str:
        f = self.fields
        return (
            f.get("displayName")
            or " ".join(x for x in (f.get("firstName"), f.get("lastName")) if x)
            or self.id
        )

    def href(self) -> str:
        return f"/rest/directory/{self.server_id}/entries/{self.id}"

    def devices_json(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{self.id}-{n}",
                "name": d.get("name", ""),
                "addressList": list(d.get("addressList") or []),
            }
            for n, d in enumerate(self.devices)
        ]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "serverId": self.server_id, "type": self.type}
        for name in TEXT_FIELDS:
            out[name] = self.fields.get(name, "")
        if not out["displayName"]:
            out["displayName"] = self.display_name
        out.update(
            {
                "presence": "OFFLINE",
                "serverProtocol": "LOCAL" if self.server_id == "local" else "LDAP",
                "devices": self.devices_json(),
                "favorite": self.favorite,
                "readOnly": self.read_only,
                "addedLocally": self.server_id == "local",
                "link": {"rel": "self", "href": self.href()},
            }
        )
        return out

    def summary(self, index: int) -> dict[str, Any]:
        return {
            "index": index,
            "firstName": self.fields.get("firstName", ""),
            "lastName": self.fields.get("lastName", ""),
            "displayName": self.display_name,
            "id": self.id,
            "serverId": self.server_id,
            "type": self.type,
            "link": {"rel": "self", "href": self.href()},
        }

    def export(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "favorite": self.favorite,
            **self.fields,
            "devices": self.devices,
            "members": self.members,
        }

    def first_address(self, device_id: str | None = None) -> str | None:
        for dev in self.devices_json():
            if device_id and dev["id"] != device_id:
                continue
            for address in dev["addressList"]:
                if address.get("number"):
                    return str(address["number"])
        return None


def _sip(name: str, number: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "addressList": [{"type": "SIP", "number": number, "extension": "", "rate": "1920"}]}
    ]


def _global_entries() -> dict[str, Entry]:
    people = [
        Entry(
            "g-1",
            "global",
            fields={"firstName": "Dana", "lastName": "Lee", "displayName": "Dana Lee"},
            devices=_sip("Desk", "dana.lee@example.com"),
            read_only=True,
        ),
        Entry(
            "g-2",
            "global",
            fields={"displayName": "Board Room"},
            devices=_sip("Room", "boardroom@example.com"),
            read_only=True,
        ),
    ]
    group = Entry(
        "g-all", "global", type="GROUP", fields={"displayName": "All Rooms"}, members=["g-2"], read_only=True
    )
    return {e.id: e for e in (*people, group)}


def _local_entries() -> dict[str, Entry]:
    alice = Entry(
        "1",
        "local",
        fields={"firstName": "Alice", "lastName": "Meyer", "displayName": "Alice Meyer"},
        devices=_sip("Office", "alice@example.com"),
        favorite=True,
    )
    helpdesk = Entry(
        "2", "local", fields={"displayName": "Helpdesk"}, devices=_sip("Desk", "helpdesk@example.com")
    )
    return {alice.id: alice, helpdesk.id: helpdesk}


@dataclass
class Query:
    id: int
    results: list[Entry]


@dataclass
class Directory:
    local: dict[str, Entry] = field(default_factory=_local_entries)
    global_: dict[str, Entry] = field(default_factory=_global_entries)
    favorites: list[tuple[str, str]] = field(default_factory=lambda: [("local", "1")])
    queries: dict[int, Query] = field(default_factory=dict)
    next_entry: int = 3
    next_query: int = 1
    imports: int = 0

    def server(self, server_id: str) -> dict[str, Entry] | None:
        return {"local": self.local, "global": self.global_}.get(server_id)

    def entry(self, server_id: str, entry_id: str) -> Entry | None:
        entries = self.server(server_id)
        return None if entries is None else entries.get(entry_id)

    # -- local writes --

    def add(self, body: dict[str, Any]) -> Entry:
        entry = Entry(str(self.next_entry), "local")
        self.next_entry += 1
        self.update(entry, body)
        self.local[entry.id] = entry
        return entry

    def update(self, entry: Entry, body: dict[str, Any]) -> None:
        for name in TEXT_FIELDS:
            if name in body:
                entry.fields[name] = str(body[name])
        if "type" in body:
            entry.type = str(body["type"])
        if "devices" in body:
            entry.devices = [dict(d) for d in body["devices"]]
        if "favorite" in body:
            self.set_favorite(entry, bool(body["favorite"]))

    def delete(self, entry: Entry) -> None:
        self.set_favorite(entry, False)
        del self.local[entry.id]
        for other in self.local.values():
            if entry.id in other.members:
                other.members.remove(entry.id)

    def set_favorite(self, entry: Entry, favorite: bool) -> None:
        key = (entry.server_id, entry.id)
        entry.favorite = favorite
        if favorite and key not in self.favorites:
            self.favorites.append(key)
        elif not favorite and key in self.favorites:
            self.favorites.remove(key)

    def move_favorite(self, entry: Entry, index: int) -> None:
        key = (entry.server_id, entry.id)
        self.favorites.remove(key)
        self.favorites.insert(min(index, len(self.favorites)), key)

    def favorite_entries(self) -> list[Entry]:
        return [e for e in (self.entry(s, i) for s, i in self.favorites) if e is not None]

    def replace_local(self, entries: list[dict[str, Any]]) -> None:
        """Import: the file's entries replace every local entry (ids kept when given)."""
        self.favorites = [k for k in self.favorites if k[0] != "local"]
        self.local = {}
        for raw in entries:
            entry_id = str(raw.get("id") or "")
            if not entry_id:
                entry_id = str(self.next_entry)
                self.next_entry += 1
            elif entry_id.isdigit():
                self.next_entry = max(self.next_entry, int(entry_id) + 1)
            entry = Entry(entry_id, "local", members=list(raw.get("members") or []))
            self.update(entry, raw)
            self.local[entry.id] = entry
        self.imports += 1

    # -- queries --

    def search(self, body: dict[str, Any]) -> Query:
        scope = body.get("serverScope", "ALL")
        if scope == "FAVORITES":
            pool = self.favorite_entries()
        else:
            pool = [
                *(self.local.values() if scope in ("ALL", "LOCAL") else ()),
                *(self.global_.values() if scope in ("ALL", "GLOBAL") else ()),
            ]
        group_id = body.get("groupID")
        if group_id:
            group = self.local.get(group_id) or self.global_.get(group_id)
            members = set(group.members) if group else set()
            pool = [e for e in pool if e.id in members]
        kind = body.get("entryScope", "ANY")
        if kind in ("SINGLE", "GROUP"):
            pool = [e for e in pool if e.type == kind]
        text = str(body.get("searchString") or "").lower()
        if text:
            pool = [e for e in pool if text in " ".join([e.display_name, *e.fields.values()]).lower()]
        order = body.get("order", "DISPLAY_NAME")
        key = {"FIRST_NAME": "firstName", "LAST_NAME": "lastName"}.get(order)
        pool.sort(key=lambda e: (e.fields.get(key, "") if key else e.display_name).lower())
        return self._store(pool)

    def member_query(self, group: Entry) -> Query:
        entries = self.server(group.server_id) or {}
        return self._store([entries[m] for m in group.members if m in entries])

    def _store(self, results: list[Entry]) -> Query:
        query = Query(self.next_query, results)
        self.queries[query.id] = query
        self.next_query += 1
        return query

    def server_info(self, server_id: str) -> dict[str, Any]:
        local = server_id == "local"
        return {
            "id": server_id,
            "address": "" if local else "ldap.example.com",
            "protocol": "LOCAL" if local else "LDAP",
            "Status": "ONLINE",
            "presenceServer": {"protocol": "NONE", "Status": "OFFLINE"},
            "link": {"rel": "self", "href": f"/rest/directory/{server_id}/server"},
        }
