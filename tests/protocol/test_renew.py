"""The ``renew`` request and its ``MembershipRenewal`` reply on the wire."""

from __future__ import annotations

import pytest

from chats_store.chats.actions import MembershipRenewal
from chats_store.chats.commands import RenewRequest
from chats_store.errors import ProtocolError
from chats_store.protocol import (
    ClientProtocol,
    ReplyReceived,
    decode_request,
    encode_reply,
    encode_request,
)


def test_the_renew_frames_in_the_docs_are_what_the_codec_writes() -> None:
    request = RenewRequest("c1")

    assert encode_request(10, request) == '{"type":"renew","id":10,"chat_id":"c1"}'
    reply = MembershipRenewal("<membership credential>")
    assert encode_reply(10, reply) == (
        '{"type":"ok","id":10,"result":{"membership":"<membership credential>"}}'
    )
    assert decode_request(encode_request(10, request)) == (10, request)


def test_the_client_reads_a_renewal_and_refuses_one_without_a_credential() -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(RenewRequest("c1"))
    protocol.receive_data(encode_reply(request_id, MembershipRenewal("fresh")))
    assert protocol.events_received() == [
        ReplyReceived(request_id, MembershipRenewal("fresh"), RenewRequest("c1"))
    ]

    again = protocol.send_request(RenewRequest("c1"))
    with pytest.raises(ProtocolError, match=r"frame\.membership"):
        protocol.receive_data(f'{{"type":"ok","id":{again},"result":{{"membership":5}}}}')
