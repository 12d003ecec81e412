"""The loopback Cyclone DDS profile and the environment helper."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from vla_ros.transport import dds_env

NS = {"c": "https://cdds.io/config"}


def test_profile_keeps_everything_on_loopback():
    root = ET.parse(dds_env.loopback_profile()).getroot()
    general = root.find("c:Domain/c:General", NS)
    interfaces = general.findall("c:Interfaces/c:NetworkInterface", NS)
    assert [(i.get("name"), i.get("multicast")) for i in interfaces] == [("lo", "false")]
    assert general.find("c:AllowMulticast", NS).text == "false"
    peers = root.findall("c:Domain/c:Discovery/c:Peers/c:Peer", NS)
    assert [p.get("Address") for p in peers] == ["127.0.0.1"]


def test_loopback_env_sets_the_uri():
    env = dds_env.loopback_env({"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["CYCLONEDDS_URI"] == dds_env.loopback_profile().resolve().as_uri()
    assert env["CYCLONEDDS_URI"].startswith("file:///") and env["CYCLONEDDS_URI"].endswith("loopback.xml")


def test_a_uri_the_user_chose_is_kept_unless_forced():
    mine = {"CYCLONEDDS_URI": "file:///etc/my_network.xml"}
    assert dds_env.loopback_env(mine)["CYCLONEDDS_URI"] == "file:///etc/my_network.xml"
    assert dds_env.loopback_env(mine, force=True)["CYCLONEDDS_URI"] == dds_env.loopback_uri()
    assert mine == {"CYCLONEDDS_URI": "file:///etc/my_network.xml"}  # the input is not changed
    assert dds_env.loopback_env({"CYCLONEDDS_URI": "  "})["CYCLONEDDS_URI"] == dds_env.loopback_uri()
