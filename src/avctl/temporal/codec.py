"""Payloads compressed before they reach Temporal (and its history).

A job's workflow input lists every selected device (name, address, password reference, ...):
~300 bytes a device as JSON, 3 MB for 10,000 devices, over Temporal's 2 MB limit on one payload.
Device lists repeat themselves, so zlib shrinks them about tenfold. Every avctl process that talks
to Temporal (CLI, server, workers) uses this codec; a payload it did not compress passes through
unchanged, so histories stay readable by Temporal's own tools once decoded.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/zlib"
#: smaller payloads are not worth compressing
MIN_BYTES = 1024
#: a payload never inflates past this (Temporal refuses payloads over 2 MB before compression anyway)
MAX_INFLATED = 256 * 1024 * 1024


class ZlibCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            raw = p.SerializeToString()
            if len(raw) < MIN_BYTES:
                out.append(p)
                continue
            out.append(Payload(metadata={"encoding": ENCODING}, data=zlib.compress(raw, 6)))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            inflate = zlib.decompressobj()
            raw = inflate.decompress(p.data, MAX_INFLATED)
            if inflate.unconsumed_tail:
                raise ValueError(f"a compressed payload inflates past {MAX_INFLATED} bytes")
            inner = Payload()
            inner.ParseFromString(raw)
            out.append(inner)
        return out


def data_converter() -> DataConverter:
    return dataclasses.replace(DataConverter.default, payload_codec=ZlibCodec())
