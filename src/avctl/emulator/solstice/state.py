"""The state of an emulated Solstice pod: the config tree of seed 004, calendar, images, cameras.

The config tree is built from `solstice_config.schema.json` (every documented key, with a neutral
value per type) and then given the values a fresh pod shows. PATCH bodies are checked against the
same schema, normalised (array forms to keyed objects, written secrets to salt+hash) and deep-merged.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from random import Random
from typing import Any

import jsonschema

from avctl.families import builtin_spec
from avctl.spec.variables import applies

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "specs" / "solstice_config.schema.json"
ASPECTS = ("16x9", "32x9")
SPLASH_SLOTS = 6
# v1 `m_systemCuration.timeZones` items are objects {id, name, offset}, as the AVI-SPL Pod Gen3
# adapter (getAllAvailableTimeZones) and a Crestron client's classes read them, not the strings the
# guide's prose says; ids, names and offsets (milliseconds) are rows of the guide's "Valid Time
# Zone Values" table (OpenControl API 1.0 Guide, copy in daneabernathy/Simple-Mersive-Solstice-Commands)
TIME_ZONES = (
    {"id": "Pacific/Honolulu", "name": "GMT-10:00, Hawaii", "offset": -36000000},
    {"id": "America/Los_Angeles", "name": "GMT-7:00, Pacific Time", "offset": -25200000},
    {"id": "America/Denver", "name": "GMT-6:00, Mountain Time", "offset": -21600000},
    {"id": "America/Chicago", "name": "GMT-5:00, Central Time", "offset": -18000000},
    {"id": "America/New_York", "name": "GMT-4:00, Eastern Time", "offset": -14400000},
    {"id": "Europe/London", "name": "GMT+1:00, London, Dublin", "offset": 3600000},
    {"id": "Europe/Amsterdam", "name": "GMT+2:00, Amsterdam, Berlin", "offset": 7200000},
    {"id": "Asia/Tokyo", "name": "GMT+9:00, Tokyo, Osaka", "offset": 32400000},
    {"id": "Australia/Sydney", "name": "GMT+10:00, Sydney, Canberra", "offset": 36000000},
)
# v1 `wifiMode` is an integer: off 0, client 1, access point 2 (zlynx/APIdemo OpenControlGETdemo.py)
V1_WIFI_MODES = {"off": 0, "client": 1, "wap": 2}
# connectionShowFlags bits (OpenControlGETdemo.py): 1 name on splash, 4 IP on splash, 8 name on
# presence bar, 16 IP on presence bar, 32 key on splash, 64 key on presence bar
_SHOW_NAME, _SHOW_IP, _BAR_NAME, _BAR_IP, _SHOW_KEY, _BAR_KEY = 1, 4, 8, 16, 32, 64

@cache
def config_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return data


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_schema())


def schema_errors(patch: Any) -> list[str]:
    """Every way `patch` violates the config schema, as `path: message` lines."""
    out = []
    for error in sorted(_validator().iter_errors(patch), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(body)"
        out.append(f"{where}: {error.message}")
    return out


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = config_schema()["$defs"][ref.rsplit("/", 1)[1]]
        return resolved
    return node


def skeleton(node: dict[str, Any]) -> Any:
    """A neutral value for every key a schema node documents (first alternative of an anyOf)."""
    node = _resolve(node)
    if "anyOf" in node:
        # secrets: the read form (salt + hash); keyed-or-array collections: the keyed form
        alternatives = [_resolve(a) for a in node["anyOf"]]
        chosen = next((a for a in alternatives if "secret_hash" in a.get("properties", {})), alternatives[0])
        return skeleton(chosen)
    kind = node.get("type")
    if kind == "object":
        return {k: skeleton(v) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind == "integer":
        return 0
    if kind == "null":
        return None
    if "enum" in node:
        return node["enum"][0]
    return ""


def hash_secret(secret: str, salt: str | None = None) -> dict[str, str]:
    salt = salt or secrets.token_hex(8)
    return {"secret_salt": salt, "secret_hash": hashlib.sha256((salt + secret).encode()).hexdigest()}


def normalise(patch: Any, path: str = "") -> Any:
    """Bring a valid PATCH body into the stored form: keyed objects, hashed secrets."""
    if isinstance(patch, dict):
        if set(patch) == {"secret"} and isinstance(patch["secret"], str):
            return hash_secret(patch["secret"])
        return {k: normalise(v, f"{path}.{k}" if path else k) for k, v in patch.items()}
    if isinstance(patch, list) and path.endswith("splash.images"):
        # example form: [{"enabled", "position": 1..6, "image": {...}|null}] -> slots "0".."5"
        out: dict[str, Any] = {}
        for item in patch:
            slot: dict[str, Any] = {"enabled": bool(item.get("enabled", False))}
            image = item.get("image")
            if isinstance(image, dict) and image.get("hash"):
                slot["16x9"] = {"hash": str(image["hash"])}
            out[str(int(item.get("position", 1)) - 1)] = slot
        return out
    if isinstance(patch, list) and path.endswith("vlans"):
        return {str(i): normalise(v, f"{path}.{i}") for i, v in enumerate(patch)}
    return patch


def leaf_paths(patch: Any, prefix: str = "") -> list[str]:
    if isinstance(patch, dict) and patch:
        out: list[str] = []
        for k, v in patch.items():
            out.extend(leaf_paths(v, f"{prefix}{k}."))
        return out
    return [prefix.rstrip(".")]


def deep_merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and value:
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def is_third_party(calendar_type: str) -> bool:
    """The '3rd Party Only' calendar type (its wire value is undocumented: match loosely)."""
    flat = re.sub(r"[^a-z0-9]", "", calendar_type.lower())
    return flat.startswith(("3rdparty", "thirdparty"))


@dataclass
class Camera:
    guid: str
    versions: dict[str, Any]
    update_until: float = 0.0


@dataclass
class SolsticeState:
    name: str
    host: str
    rng: Random
    firmware: str = "5.5.3.14"
    model: str = "Solstice Pod"
    variant: str = "Gen3"
    config: dict[str, Any] = field(default_factory=dict)
    device_id: str = ""
    screen_key: str = ""
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[tuple[int, str], bytes] = field(default_factory=dict)
    cameras: dict[str, Camera] = field(default_factory=dict)
    reboot_required: bool = False
    restart_required: bool = False
    last_rollback_timeout: int | None = None
    hdmi_forced_off: bool = False
    display_suspended: bool = False
    connected_users: int = 0
    post_count: int = 0
    v1_overrides: dict[str, Any] = field(default_factory=dict)
    v1_splash: dict[int | None, bytes | None] = field(default_factory=dict)
    update_available_to: str | None = "5.5.4.2"
    serial_sent: list[str] = field(default_factory=list)
    routing: dict[str, Any] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    camera_update_seconds: float = 1.0

    def __post_init__(self) -> None:
        self.device_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.screen_key = f"{self.rng.randrange(10000):04d}"
        self.config = self._defaults()
        guid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.cameras[guid] = Camera(
            guid,
            {
                "videoVersion": "1.3.11", "audioVersion": "2.0.3", "eepromVersion": "1.4",
                "bluetoothVersion": "2.1", "tablehubVersion": "1.0.7",
                "videoFirmware": "1.4.2", "audioFirmware": "2.0.5", "eepromFirmware": "1.4",
                "bluetoothFirmware": "2.1", "tablehubFirmware": "1.0.9", "updateAvailable": True,
            },
        )
        self.routing = {"presence": False, "message": "", "background": "#000000",
                        "foreground": "#FFFFFF", "audio": False}

    def _defaults(self) -> dict[str, Any]:
        config: dict[str, Any] = skeleton(config_schema())
        display = config["display"]
        display["name"] = self.name
        display["license_agree"] = True
        display["output_mode"] = "single"
        display["input_mode"] = "standard"
        display["usb_audio_to_hdmi_enabled"] = True
        display["first_run"]["completed"] = True
        display["clock"].update(show=True, timezone="America/Denver", show_24_hours=False)
        display["clock"]["ntp_server"].update(enabled=True, hostname="pool.ntp.org")
        display["presence_bar"].update(show=True, auto_hide=True, show_name=True, show_ip_address=True,
                                       show_screenkey=True)
        display["instructions"].update(overlay="hide", show_airplay=True, show_miracast=True)
        display["calendar"].update(type="exchange", update_interval=5, show_titles=True,
                                   show_organizers=True)
        display["calendar"]["exchange"].update(authorization_type="basic", mailbox_type="default")
        display["preferred_input"]["resolution_options"] = "1080p"
        display["digital_signage"].update(start_after=10, screen_options="fullscreen",
                                          instruction_options="network_only")
        splash = display["splash"]
        splash.update(foreground_color="#FFFFFF", is_modern=True, show_name=True)
        splash["screen_key"].update(enabled=True, show=True)
        splash["messaging"]["rss_feed_count"] = 0
        conn = config["connection"]
        conn["host_name"] = self.name
        conn["discovery"]["broadcast"] = True
        eth = conn["ethernet"]
        eth.update(enabled=True, name="INTERNAL")
        eth["ip_configuration"].update(ip_type="dhcp", ip_address=self.host, network_prefix_length=8,
                                       gateway="127.0.0.1", hostname=self.name, allow_admin=True)
        for i, vlan in eth["vlans"].items():
            vlan.update(label=f"VLAN {i}", tag=10 + int(i))
            vlan["ip_configuration"]["ip_type"] = "dhcp"
        conn["wifi"]["mode"] = "off"
        conn["qos"].update(audio_dscp="46", video_dscp="34")
        config["locale"]["language"] = "en-US"
        sec = config["security"]
        sec.update(allow_local_configuration=True, allow_web_browser_configuration=True,
                   encryption_enabled=True, enforce_admin_password_validation_rules=True)
        maint = config["maintenance"]
        maint["daily_restart"].update(enabled=True, time="03:00")
        maint["power_management"]["control"]["control_method"] = "hdmi"
        sharing = config["sharing"]
        sharing["airplay"].update(enabled=True, proxy_enabled=False, bluetooth_enabled=True)
        sharing["miracast"].update(wifi_direct_enabled=False, infrastructure_enabled=True)
        sharing.update(android_mirroring_enabled=True, quick_connect_action="launch_and_connect",
                       alignment="grid", browser_look_in="enabled", webrtc_enabled=True)
        sharing["application"]["enabled"] = True
        sharing["desktop"]["enabled"] = True
        return config

    # -- config --

    def set_admin_password(self, password: str) -> None:
        self.config["security"]["admin_password"] = hash_secret(password) if password else {
            "secret_salt": "", "secret_hash": ""}

    def apply_patch(self, patch: dict[str, Any]) -> tuple[bool, bool]:
        """Merge a schema-valid patch; returns (reboot_required, restart_required) for this change."""
        stored = normalise(patch)
        paths = leaf_paths(stored)
        deep_merge(self.config, stored)
        # what each key takes is the spec's (its Variables); a secret's path ends in its salt/hash
        effects = {applies(builtin_spec("solstice"), p) for p in paths}
        reboot, restart = "reboot" in effects, "restart" in effects
        self.reboot_required = self.reboot_required or reboot
        self.restart_required = self.restart_required or restart
        return self.reboot_required, self.restart_required

    def branch(self, key_path: str) -> Any:
        node: Any = self.config
        for part in key_path.strip("/").split("/"):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(key_path)
            node = node[part]
        return node

    @property
    def calendar_type(self) -> str:
        return str(self.config["display"]["calendar"].get("type", ""))

    # -- calendar --

    def new_meeting_id(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex[:12]

    def sorted_meetings(self) -> list[dict[str, Any]]:
        return sorted(self.meetings.values(), key=lambda m: (m.get("start_time", 0), m["id"]))

    # -- images --

    def store_image(self, position: int, aspect: str, data: bytes) -> None:
        self.images[(position, aspect)] = data
        slot = self.config["display"]["splash"]["images"][str(position)]
        slot[aspect] = {"hash": hashlib.sha1(data).hexdigest()[:16]}
        slot["enabled"] = True

    # -- cameras --

    def camera_status(self) -> str:
        return "updating" if any(c.update_until > time.monotonic() for c in self.cameras.values()) else "idle"

    def start_camera_update(self, guid: str) -> None:
        cam = self.cameras[guid]
        cam.update_until = time.monotonic() + self.camera_update_seconds
        v = cam.versions
        for part in ("video", "audio", "eeprom", "bluetooth", "tablehub"):
            v[f"{part}Version"] = v[f"{part}Firmware"]
        v["updateAvailable"] = False

    # -- v1 views --

    def connection_show_flags(self) -> int:
        """The v1 bit field of what the splash screen and presence bar show, from the v2 config."""
        display = self.config["display"]
        bar, splash = display["presence_bar"], display["splash"]
        flags = 0
        for on, bit in ((splash["show_name"], _SHOW_NAME), (splash["screen_key"]["show"], _SHOW_KEY),
                        (bar["show_name"], _BAR_NAME), (bar["show_ip_address"], _BAR_IP),
                        (bar["show_screenkey"], _BAR_KEY),
                        # the splash shows the address unless set to show the host name instead
                        (not splash["show_hostname_instead_of_ip"], _SHOW_IP)):
            flags |= bit if on else 0
        return flags

    def v1_config(self) -> dict[str, Any]:
        display = self.config["display"]
        conn = self.config["connection"]
        sharing = self.config["sharing"]
        record: dict[str, Any] = {
            "m_displayId": self.device_id,
            "m_serverVersion": self.firmware,
            "m_productName": self.model,
            "m_productVariant": self.variant,
            "m_productHardwareVersion": 3,
            "m_displayInformation": {
                "m_ipv4": self.host,
                "m_displayName": display["name"],
                "m_hostName": conn["host_name"],
                "m_port": 53100,
            },
            "m_generalCuration": {
                "language": self.config["locale"]["language"],
                "showSplashScreen": True,
                "localConfigEnabled": self.config["security"]["allow_local_configuration"],
                "browserConfigEnabled": self.config["security"]["allow_web_browser_configuration"],
                "autoConnectOnClientLaunch": True,
                "autoSDSOnClientLaunch": False,
                "hdmiOutDisplayMode": 0,
            },
            "m_authenticationCuration": {
                "authenticationMode": 0,
                "screenKeyEnabled": display["splash"]["screen_key"]["enabled"],
                "moderatorApprovalDisabled": True,
                "sessionKey": self.screen_key,
            },
            # the keys zlynx/APIdemo OpenControlGETdemo.py and AVI-SPL's model-mapping.yml read
            "m_networkCuration": {
                "connectionShowFlags": self.connection_show_flags(),
                "discoveryBroadcastEnabled": conn["discovery"]["broadcast"],
                "publishToNameServer": conn["discovery"]["publish_to_sds"],
                "maximumConnections": 64,
                "maximumLicensedConnections": 4294967295,
                "maximumImageSize": 1048576,
                "maximumPublished": 64,
                "maximumAirPlayUsers": 4,
                "sdsHostName": "",
                "sdsHostName2": "",
                "remoteViewMode": 0,
                "firewallMode": 0,
                "postTypeDesktopSupported": sharing["desktop"]["enabled"],
                "postTypeApplicationWindowSupported": sharing["application"]["enabled"],
                "postTypeMediaFilesSupported": True,
                "postTypeAirPlaySupported": sharing["airplay"]["enabled"],
                "postTypeAndroidMirroringSupported": sharing["android_mirroring_enabled"],
                "bonjourProxyEnabled": sharing["airplay"]["proxy_enabled"],
                "ethernetEnabled": conn["ethernet"]["enabled"],
                "ethernetGatewayCheckEnabled": conn["gateway_check_enabled"],
                "wifiMode": V1_WIFI_MODES.get(str(conn["wifi"]["mode"]), 0),
                "bulletinEnabled": False,
                "bulletinText": "",
                "emergencyEnabled": False,
                "emergencyText": "",
                "m_rssFeedList": [],
            },
            "m_licenseCuration": {
                "licenseStatus": 2, "trustFlags": 0, "fulfillmentType": "", "enabled": True,
                "fulfillmentId": self.device_id, "entitlementId": "", "productId": "", "suiteId": "",
                "expirationDate": "", "featureLine": "", "numDaysToExpiration": 0, "maxUsers": "Unlimited",
            },
            "m_userGroupCuration": {"adminPassword": "unknown", "passwordValidationEnabled": True},
            "m_systemCuration": {
                "autoDateTime": display["clock"]["ntp_server"]["enabled"],
                "ntpServer": display["clock"]["ntp_server"]["hostname"],
                "dateTime": int(time.time() * 1000),
                "timeZone": display["clock"]["timezone"],
                "l24HourTime": display["clock"]["show_24_hours"],
                "scheduledRestartEnabled": self.config["maintenance"]["daily_restart"]["enabled"],
                "scheduledRestartTime": self.config["maintenance"]["daily_restart"]["time"],
                "timeZones": [dict(zone) for zone in TIME_ZONES],
            },
            "m_powerManagementCuration": {"enabled": self.config["maintenance"]["power_management"][
                "off_hours_enabled"]},
        }
        deep_merge(record, self.v1_overrides)
        return record

    def apply_v1_config(self, patch: dict[str, Any]) -> str | None:
        """Merge a v1 config POST. Returns a new admin password when the POST sets one."""
        info = patch.get("m_displayInformation") or {}
        if isinstance(info.get("m_displayName"), str):
            self.config["display"]["name"] = info["m_displayName"]
        if isinstance(info.get("m_hostName"), str):
            self.config["connection"]["host_name"] = info["m_hostName"]
        general = patch.get("m_generalCuration") or {}
        if isinstance(general.get("language"), str):
            self.config["locale"]["language"] = general["language"]
        if "m_networkCuration" in patch:
            self.reboot_required = True
        users = patch.get("m_userGroupCuration") or {}
        new_password = users.get("adminPassword")
        rest = {k: v for k, v in patch.items() if k not in ("password",)}
        if isinstance(rest.get("m_userGroupCuration"), dict):
            rest["m_userGroupCuration"] = {k: v for k, v in rest["m_userGroupCuration"].items()
                                           if k != "adminPassword"}
        for key in ("m_displayInformation",):
            rest.pop(key, None)
        deep_merge(self.v1_overrides, rest)
        return new_password if isinstance(new_password, str) else None

    def routing_session(self) -> dict[str, Any]:
        """GET /v2/content/activerouting: the keys AVI-SPL's adapter reads (ActiveRoutingProperty.java):
        `state`, `connections` (a count), `framesPerSecond`, `bytesPerSecond`; plus the configured
        presentation. The values of `state` are not public: ASSUMPTION "active"/"idle"."""
        count = len(self.routes)
        return {**self.routing, "state": "active" if count else "idle", "connections": count,
                "framesPerSecond": 30 if count else 0, "bytesPerSecond": 250000 * count}

    def routing_connections(self) -> dict[str, dict[str, Any]]:
        """GET .../connections: `connections` is an object whose members carry `name` and `ip`
        (AVI-SPL's SolsticePodGen3Communicator reads it only when it is an object), keyed by sink."""
        return {str(route["sink"]): {"name": str(route.get("name", route["sink"])), "ip": str(route["sink"])}
                for route in self.routes}

    def v1_stats(self) -> dict[str, Any]:
        return {
            "m_displayId": self.device_id,
            "m_serverVersion": self.firmware,
            "m_displayInformation": {
                "m_displayName": self.config["display"]["name"],
                "m_productName": self.model,
                "m_productVariant": self.variant,
                "m_productHardwareVersion": 3,
            },
            "m_statistics": {
                "m_currentPostCount": self.post_count,
                "m_currentBandwidth": 1200 * self.connected_users,
                "m_connectedUsers": self.connected_users,
                "m_timeSinceLastConnectionInitialize": 0 if not self.connected_users else 60000,
                "m_currentLiveSourceCount": min(self.post_count, self.connected_users),
            },
        }

    def info(self, mac: str) -> dict[str, Any]:
        ip = self.config["connection"]["ethernet"]["ip_configuration"]
        return {
            "connection": {
                "ethernet": {
                    "dns1": ip["dns1"], "dns2": ip["dns2"], "gateway": ip["gateway"],
                    "hostname": self.config["connection"]["host_name"], "ip_address": self.host,
                    "ip_type": ip["ip_type"], "mac_address": mac,
                },
                "vlans": {},
            },
            "usb_audio_devices": ["USB-Audio - Logitech Rally Bar"],
            "wap_channels": {"channels_2_4G": [1, 6, 11], "channels_5G": [36, 40, 44, 48, 149, 153, 157, 161]},
        }
