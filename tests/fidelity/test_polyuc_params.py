"""The Poly UC emulator's full parameter set (issue 14, second round).

Evidence:

- TPL: Poly UC Software template configuration files (`site.cfg`, `features.cfg`, `video.cfg`,
  `reg-advanced.cfg`, `device.cfg`...; "Generated <file> Configuration File"), as copied into
  openspork/pp `configs/` at c85ccdfb14005c3903d0e15386305ed8d6309577. The generated table
  `src/avctl/emulator/polyuc/params.json` holds their names and defaults; its header records them.
- VVXME: eupubs/vvxme (UCS 6.1 tested) `vvxme/menu/quick_configuration_submenu.py`, the parameters
  its menus read and write, and `vvxme/vvxme.py` setConfig: "setConfig API has limit of 20
  parameters in each request".
- AVT: AVI-SPL Symphony PolycomTrio adapter (`PolycomTrio.java`): reads `video.callRate`, whose
  recorded config/get answer on a Trio is `{"Value": "2048", "Source": "default"}`; its recorded
  sessionStats answer (populateInCallStats) has a "1:Video" stream and "SRTPCall"/"H235Call"; its
  notes say 4009 is "Parameter count exceeded limit of 20 parameters".
- MIV: HL727/Meeting `endpoint/tests/mock_data/poly_trio.py`, a config/get answered by a Trio 8800
  on UC Software 7.2.2: `"ptt.volume": {"Value": "-20", "Source": "default"}`.
- POSH/ITEST: Status 4009 "input size limit exceeded" (apiref/polyuc.md section 2).

Real HTTPS on loopback, the avctl client (`Device`) against the emulator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from avctl import Credentials, Device, DeviceError, TLSPolicy, ValidationError
from avctl.emulator.core import EmulatorThread
from avctl.emulator.polyuc import EmulatedPolyUC
from avctl.emulator.polyuc import params as uc_params
from avctl.emulator.polyuc.state import CONFIG_SET_LIMIT
from avctl.families import builtin_spec

SPEC = builtin_spec("polyuc")
PASSWORD = "s3cret-789"
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src/avctl/emulator/polyuc/params.json"

#: the spec catalogue's parameters the templates do not have, or give another default; each is
#: written down in docs/fidelity.md ("Poly UC parameters")
CATALOGUE_VS_TEMPLATES = {
    "device.prov.serverType": "2",  # device.cfg leaves it empty; the catalogue's 2 (HTTP) stays
    "lcl.ml.lang": "English_United_States",  # region.cfg leaves it empty
    "diags.pcap.enabled": "0",  # not in the templates
    "sec.tls.protocol.restApi": "TLSv1_2",  # not in the templates
}


def add_phone(emulators: EmulatorThread, name: str = "vvx", model: str = "VVX 450") -> EmulatedPolyUC:
    dev = EmulatedPolyUC(name, password=PASSWORD, model=model)
    emulators.add(dev)
    return dev


def client(dev: EmulatedPolyUC, tls: TLSPolicy) -> Device:
    return Device(SPEC, f"127.0.0.1:{dev.port}", credentials=Credentials(None, PASSWORD), tls=tls)


# --- the data file ------------------------------------------------------------------------------


def test_data_file_records_its_provenance_and_a_default_for_every_entry() -> None:
    table = json.loads(DATA.read_text("utf-8"))
    header = uc_params.provenance()  # as the installed package reads it
    assert header == table["provenance"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", header["generated"])
    assert header["generator"] == "scripts/gen_polyuc_params.py"
    [source] = header["sources"]
    assert source["repository"] == "openspork/pp"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert source["software_version"] and source["parameters"] == len(table["params"])
    paths = {p["path"] for p in source["paths"]}
    assert {"configs/site.cfg", "configs/features.cfg", "configs/video.cfg", "configs/reg-advanced.cfg",
            "configs/device.cfg"} <= paths
    assert all(re.fullmatch(r"[0-9a-f]{64}", p["sha256"]) for p in source["paths"])
    params = table["params"]
    assert len(params) > 4000  # thousands, as on a real phone, not 24
    for name, item in params.items():
        assert isinstance(item["default"], str), name
        assert set(item) <= {"default", "type"} and item.get("type", "boolean") == "boolean", name
    assert DATA.stat().st_size < 1024 * 1024


def test_the_catalogue_is_in_the_data_file_or_its_difference_is_written_down() -> None:
    params = json.loads(DATA.read_text("utf-8"))["params"]
    differs = {name: info.default for name, info in uc_params.catalogue().items()
               if params.get(name, {}).get("default") != info.default}
    assert differs == CATALOGUE_VS_TEMPLATES
    notes = (ROOT / "docs/fidelity.md").read_text("utf-8").split("## Poly UC parameters", 1)[1]
    assert all(f"`{name}`" in notes for name in CATALOGUE_VS_TEMPLATES)


# --- config/get and config/set over HTTPS ------------------------------------------------------------


async def test_real_parameter_names_read_back_their_defaults(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    expected = {
        "video.callRate": "512",  # TPL video.cfg; read by AVT
        "reg.1.address": "",  # TPL reg-basic.cfg
        "SCEP.enable": "0",  # TPL features.cfg
        "reg.1.server.1.transport": "DNSnaptr",  # TPL reg-advanced.cfg
        # VVXME's quick-configuration menu
        "call.autoAnswer.SIP": "0",
        "feature.acousticFenceUI.enabled": "0",
        "up.Pagination.enabled": "0",
        "up.LineViewCallStatus.enabled": "0",
        "usb.headset.config.enabled": "1",
        "feature.usbLogging.enabled": "0",
        "device.net.lldpEnabled.set": "0",
        "ptt.volume": "-20",  # MIV: a Trio 8800 answers {"Value": "-20", "Source": "default"}
    }
    async with client(dev, tls) as d:
        data = (await d.call("config_get", names=list(expected))).data
        catalogue = (await d.call("config_get", names=["tone.dtmf.level", "apps.restapi.enabled"])).data
    assert data == {name: {"Value": value, "Source": "default"} for name, value in expected.items()}
    # the catalogue's parameters keep their behaviour: typed defaults, the REST API switched on
    assert catalogue == {"tone.dtmf.level": {"Value": "-15", "Source": "default"},
                         "apps.restapi.enabled": {"Value": "1", "Source": "web"}}
    assert dev.phone.config.own() == {"apps.restapi.enabled": ("1", "web")}  # nothing else stored


async def test_set_and_get_round_trip_per_phone(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev, other = add_phone(emulators), add_phone(emulators, "vvx-2")
    values = {"video.callRate": "1024", "SCEP.enable": "1", "reg.2.address": "2002",
              # VVXME's LLDP switch: a device.* parameter with its companions
              "device.set": "1", "device.net.lldpEnabled": "0", "device.net.lldpEnabled.set": "1"}
    async with client(dev, tls) as d:
        await d.call("config_set", values=values)
        data = (await d.call("config_get", names=list(values))).data
    assert data == {name: {"Value": value, "Source": "web"} for name, value in values.items()}
    assert set(dev.phone.config.own()) == {*values, "apps.restapi.enabled"}  # only what was set
    # a reset of the web source forgets them (and the web-enabled REST API with them, as before)
    dev.phone.config_reset("web")
    assert dev.phone.config.own() == {}
    assert dev.phone.config_get(["video.callRate", "SCEP.enable"]) == {
        "video.callRate": {"Value": "512", "Source": "default"}, "SCEP.enable": {"Value": "0", "Source": "default"}}
    async with client(other, tls) as d:  # one shared table: another phone still has the defaults
        assert (await d.call("config_get", names=["reg.2.address"])).data == {
            "reg.2.address": {"Value": "", "Source": "default"}}


async def test_device_parameters_need_their_set_companions(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        await d.call("config_set", values={"device.net.cdpEnabled": "0"})  # no device.set: ignored
        data = (await d.call("config_get", names=["device.net.cdpEnabled"])).data
    assert data == {"device.net.cdpEnabled": {"Value": "", "Source": "default"}}


async def test_a_password_parameter_reads_back_empty(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        await d.call("config_set", values={"reg.2.auth.password": "line-two-secret"})
        data = (await d.call("config_get", names=["reg.2.auth.password"])).data
    assert data == {"reg.2.auth.password": {"Value": "", "Source": "web"}}
    assert dev.phone.config["reg.2.auth.password"].current == "line-two-secret"  # it took


async def test_type_and_range_refusals(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as boolean:  # TPL boolean (.enable with a 0/1 default)
            await d.call("config_set", values={"SCEP.enable": "yes", "video.callRate": "768"})
        with pytest.raises(DeviceError) as ranged:  # the catalogue's range, -33 to 3 dB
            await d.call("config_set", values={"tone.dtmf.level": "9"})
        data = (await d.call("config_get", names=["video.callRate", "SCEP.enable"])).data
    assert boolean.value.code == "4000" and boolean.value.body["data"] == {"InvalidValues": ["SCEP.enable"]}
    assert ranged.value.code == "4000" and ranged.value.body["data"] == {"InvalidValues": ["tone.dtmf.level"]}
    assert data["video.callRate"]["Value"] == "512"  # a refused request changes nothing
    assert data["SCEP.enable"]["Value"] == "0"


async def test_an_unknown_name_is_still_4000(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    dev = add_phone(emulators)
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as got:
            await d.call("config_get", names=["video.callRate", "video.noSuchThing"])
        with pytest.raises(DeviceError) as put:
            await d.call("config_set", values={"reg.1.noSuchThing": "1"})
    assert got.value.code == "4000" and got.value.body["data"] == {"UnknownParameters": ["video.noSuchThing"]}
    assert put.value.code == "4000" and put.value.body["data"] == {"UnknownParameters": ["reg.1.noSuchThing"]}


async def test_config_set_takes_at_most_20_parameters(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    """VVXME: "setConfig API has limit of 20 parameters in each request"; 4009 is the phones'
    "input size limit exceeded" (POSH, ITEST)."""
    dev = add_phone(emulators)
    names = [f"se.rt.custom{n}.videoMute" for n in range(1, 18)] + ["video.callRate", "SCEP.enable",
                                                                       "reg.2.address", "reg.2.label"]
    assert len(names) == CONFIG_SET_LIMIT + 1 == 21
    async with client(dev, tls) as d:
        with pytest.raises(DeviceError) as too_many:
            await d.call("config_set", values={n: "1" for n in names})
        await d.call("config_set", values={n: "1" for n in names[:CONFIG_SET_LIMIT]})
        data = (await d.call("config_get", names=names[:CONFIG_SET_LIMIT])).data
        last = (await d.call("config_get", names=names[CONFIG_SET_LIMIT:])).data
        # AVT lists 4009 among config/get's answers too: the spec caps names at 20, so the client
        # refuses 21 before anything is sent; the phone answers 4009 to a client that sends them
        sent = len(dev.requests)
        with pytest.raises(ValidationError, match="names"):
            await d.call("config_get", names=names)
        assert len(dev.requests) == sent
    assert too_many.value.code == "4009"
    assert [data[n]["Value"] for n in names[:CONFIG_SET_LIMIT]] == ["1"] * CONFIG_SET_LIMIT
    assert last[names[-1]]["Value"] == ""
    raw = _raw_post(dev, "/api/v1/mgmt/config/get", {"data": names})
    assert raw["Status"] == "4009"


def test_the_table_is_loaded_once_and_shared() -> None:
    first, again = uc_params.table(), uc_params.table()
    assert first is again and "video.callRate" in first
    assert "tone.dtmf.level" not in first  # the catalogue's entries are typed by the spec instead


# --- 2. model differences: a Trio's defaults and video stream (AVT) -------------------------------------

#: the fields of AVT's recorded video stream (PolycomTrio.java, populateInCallStats)
AVT_VIDEO_STREAM = {
    "Ref", "RxPayloadSize", "VideoRxFrameWidth", "Jitter", "Category", "PacketsSent", "PacketsExpected",
    "TxPayloadSize", "VideoTxFramerate", "OctetsSent", "MaxJitter", "VideoRxFramerate", "PacketsReceived",
    "VideoRxFastUpdateReqCnt", "VideoTxActBitrateKbps", "RxCodec", "OctetsReceived", "PacketsLost", "Latency",
    "TxCodec", "VideoTxFastUpdateReqCnt", "VideoTxFrameWidth", "VideoTxFrameHeight", "VideoTxConfigBitrateKbps",
    "VideoRxFrameHeight", "VideoRxActBitrateKbps",
}


async def test_a_trio_reports_its_own_video_call_rate(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    trio, vvx = add_phone(emulators, "trio", "Trio 8800"), add_phone(emulators)
    async with client(trio, tls) as d:
        on_trio = (await d.call("config_get", names=["video.callRate"])).data
        trio.phone.factory_reset()
    async with client(vvx, tls) as d:
        on_vvx = (await d.call("config_get", names=["video.callRate"])).data
    assert on_trio == {"video.callRate": {"Value": "2048", "Source": "default"}}  # AVT, recorded on a Trio
    assert on_vvx == {"video.callRate": {"Value": "512", "Source": "default"}}  # TPL video.cfg
    assert trio.phone.config["video.callRate"].current == "2048"  # a factory reset keeps the model's


async def test_a_trio_call_has_a_video_stream(emulators: EmulatorThread, tls: TLSPolicy) -> None:
    trio, vvx = add_phone(emulators, "trio", "Trio 8800"), add_phone(emulators)
    call = trio.phone.dial("123", 1, "SIP")
    vvx.phone.dial("456", 1, "SIP")
    async with client(trio, tls) as d:
        [session] = (await d.call("session_stats")).data
    async with client(vvx, tls) as d:
        [audio_only] = (await d.call("session_stats")).data
    voice, video = session["Streams"]
    assert voice["Category"] == "0:Voice" and video["Category"] == "1:Video"
    assert set(video) == AVT_VIDEO_STREAM and all(isinstance(v, str) for v in video.values())
    assert video["TxCodec"] == video["RxCodec"] == "24:H.264"  # RTP payload number and name, as recorded
    assert video["TxPayloadSize"] == video["RxPayloadSize"] == "v"
    assert session["Ref"] == f"0x{call.hex}" != video["Ref"]  # the recording's streams have their own Refs
    assert (session["SRTPCall"], session["H235Call"]) == ("False", "False")
    # no recording shows a VVX's streams: voice only, with the session fields of the recording
    assert [s["Category"] for s in audio_only["Streams"]] == ["0:Voice"]
    assert (audio_only["SRTPCall"], audio_only["H235Call"]) == ("False", "False")


def _raw_post(dev: EmulatedPolyUC, path: str, body: object) -> dict[str, object]:
    """A request as a client without avctl's checks sends it (Basic auth over HTTPS)."""
    import base64
    import ssl
    import urllib.request

    context = ssl.create_default_context(cadata=dev.cert_pem.decode())
    context.check_hostname = False  # the emulator's certificate names the device, not 127.0.0.1
    auth = base64.b64encode(f"{dev.user}:{dev.password}".encode()).decode()
    request = urllib.request.Request(f"https://127.0.0.1:{dev.port}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Authorization": f"Basic {auth}",
                                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20, context=context) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result
