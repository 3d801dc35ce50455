"""Solstice answers corrected in issue 14's second round, each beside the public evidence it follows.

Evidence (read, not copied):

- AVS: github.com/AVISPL/dal-avdevices-wireless-presentation-mersive-solsticepod at
  f9cba1120f06691884c217f12f0e056a5a3ce8e4, `SolsticePodGen3Communicator.java`
  `sendCommandSetDefaultBackground()`: a production Pod Gen3 adapter POSTs the object
  `{"file": "reset default", "password": <admin password>}` to `/api/config/splashbackground` and
  counts the reset done only when the answer is `{"result": "Success"}` (`isSuccessResponse`).
- OCG: Mersive's OpenControl API 1.0 Guide (copy: daneabernathy/Simple-Mersive-Solstice-Commands,
  APIdocumentation.md), "Splashscreen Commands": the reset is the form field `file` with the text
  value `reset default`, to the classic path or a carousel slot `/n` (0-5); an image is the same
  field as a file.

Real HTTPS to an emulated pod's v1 socket on loopback: as AVS sends it (`requests`, JSON), as the
guide's form (curl `-F`), and through avctl's client, which must keep working.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from avctl import Credentials, Device
from avctl.emulator.core import EmulatorThread
from avctl.emulator.solstice import EmulatedSolstice
from avctl.families import builtin_spec
from avctl.transport.tls import TLSPolicy

requests = pytest.importorskip("requests", reason="raw client requests need 'requests' (dev extra)")

SPEC = builtin_spec("solstice")
PASSWORD = "pod-gaps-1"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def pod(emulators: EmulatorThread) -> EmulatedSolstice:
    return cast(EmulatedSolstice, emulators.add(EmulatedSolstice("pod-gaps", "127.0.0.1", 0, password=PASSWORD)))


@pytest.fixture
def ca(pod: EmulatedSolstice, tmp_path: Path) -> str:
    """The pod's own certificate as a file, which `requests` and curl trust."""
    path = tmp_path / "pod-gaps.pem"
    path.write_bytes(pod.cert_pem)
    return str(path)


def _splash_url(pod: EmulatedSolstice, slot: int | None = None) -> str:
    return f"https://127.0.0.1:{pod.v1_https_port}/api/config/splashbackground" + (f"/{slot}" if slot is not None
                                                                                   else "")


def _as_avs_sends_it(pod: EmulatedSolstice, ca: str, password: str, slot: int | None = None) -> Any:
    return requests.post(_splash_url(pod, slot), json={"file": "reset default", "password": password},
                         verify=ca, timeout=10)


# --- the reset as AVS sends it: a JSON object, answered {"result": "Success"} -----------------------------


def test_json_reset_answers_success_and_resets(pod: EmulatedSolstice, ca: str) -> None:
    pod.state.v1_splash[None] = JPEG
    answer = _as_avs_sends_it(pod, ca, PASSWORD)
    assert (answer.status_code, answer.json()) == (200, {"result": "Success"})
    assert pod.state.v1_splash[None] is None


def test_json_reset_of_a_carousel_slot(pod: EmulatedSolstice, ca: str) -> None:
    pod.state.v1_splash[4] = JPEG
    answer = _as_avs_sends_it(pod, ca, PASSWORD, slot=4)
    assert answer.json() == {"result": "Success"} and pod.state.v1_splash[4] is None


def test_wrong_password_is_still_ignored(pod: EmulatedSolstice, ca: str) -> None:
    # OCG: a v1 command with a wrong password "is ignored"; AVS's success test then fails, as it should
    pod.state.v1_splash[None] = JPEG
    answer = _as_avs_sends_it(pod, ca, "not-the-password")
    assert (answer.status_code, answer.content) == (200, b"")
    assert pod.state.v1_splash[None] == JPEG


def test_an_image_still_needs_the_multipart_field(pod: EmulatedSolstice, ca: str) -> None:
    # only the reset has a text form; an image sent as a JSON string is refused, nothing stored
    answer = requests.post(_splash_url(pod), json={"file": "not-an-image", "password": PASSWORD}, verify=ca,
                           timeout=10)
    assert answer.status_code == 400 and pod.state.v1_splash.get(None) is None


# --- the guide's form: curl -F, the same answer ----------------------------------------------------------


def test_form_reset_with_curl(pod: EmulatedSolstice, ca: str) -> None:
    pod.state.v1_splash[2] = JPEG
    out = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "-F", "file=reset default", "-F", f"password={PASSWORD}",
         _splash_url(pod, 2)],
        capture_output=True, timeout=60, check=True,
    )
    assert json.loads(out.stdout) == {"result": "Success"}
    assert pod.state.v1_splash[2] is None


def test_image_upload_with_curl_keeps_its_empty_answer(pod: EmulatedSolstice, ca: str, tmp_path: Path) -> None:
    (tmp_path / "splash.jpg").write_bytes(JPEG)
    out = subprocess.run(
        ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", "-F", f"file=@{tmp_path}/splash.jpg",
         f"{_splash_url(pod)}?password={PASSWORD}"],
        capture_output=True, timeout=60, check=True,
    )
    assert out.stdout == b"200" and pod.state.v1_splash[None] == JPEG


# --- avctl's client: the reset still works and shows the pod's answer ---------------------------------------


async def test_avctl_client_resets_and_reads_the_answer(pod: EmulatedSolstice, tls: TLSPolicy) -> None:
    pod.state.v1_splash[None] = JPEG
    pod.state.v1_splash[5] = JPEG
    async with Device(SPEC, f"127.0.0.1:{pod.port}", credentials=Credentials("admin", PASSWORD), tls=tls,
                      ports={"https": pod.v1_https_port}) as dev:
        classic = await dev.call("v1_splash_background_reset")
        slot = await dev.call("v1_splash_slot_reset", slot=5)
    assert classic.data == {"result": "Success"} and slot.data == {"result": "Success"}
    assert pod.state.v1_splash[None] is None and pod.state.v1_splash[5] is None
