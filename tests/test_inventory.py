"""The Ansible inventory as drills reads it: the same hosts and variables as
`ansible-inventory --list` for INI and YAML files (groups, children, vars, ranges), what drills
takes from the variables, and every hostile input refused with the file, the line and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drills.cli import main
from drills.errors import ExitCode, ScenarioError
from drills.hosts.inventory import MAX_INVENTORY_BYTES, InventoryError, load_inventory, var_text
from drills.hosts.inventory_parse import MAX_GROUP_DEPTH, MAX_HOSTS, MAX_LINE_CHARS

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"

# --------------------------------------------------------------------------- the cross-check

INI_GROUPS = """\
# hosts before any section are `ungrouped`
lonely ansible_host=10.0.0.9 ansible_port=2200
[web]
w[1:3] ansible_user=deploy note="two words"   # a comment
www.example.com:2222
[db]
db1 ansible_host=192.0.2.5 port=5432 flag=True answer=yes
[web:vars]
ansible_become=yes
x=1
[prod:children]
web
db
[prod:vars]
x=0
y=[1, 2]
[all:vars]
z=all
x=-1
"""

INI_PRECEDENCE = """\
[a]
h1
h2
[b]
h1
h3 v=host
[b:vars]
v=b
[a:vars]
v=a
[c:children]
a
[c:vars]
v=c
w=c
[d]
h2
[d:vars]
v=d
ansible_group_priority=0
"""

INI_RANGES = """\
[edge]
e[01:10:3].lab
node-[a:c]-[1:2]
r[0:2] drills_underlay=198.51.100.7 drills_underlay_mtu=9000
"""

YAML_NESTED = """\
all:
  vars:
    z: all
    n: 3
  hosts:
    solo:
      ansible_host: 192.0.2.40
  children:
    dc1:
      vars: {site: one, flag: yes}
      hosts:
        s[1:2]:
        s3: {ansible_connection: local}
      children:
        racks:
          hosts: s9
          vars: {site: rack, list: [1, two]}
    dc2:
      hosts:
        t1: {ansible_host: 2001:db8::1, ansible_become: true}
"""

YAML_TOP_GROUPS = """\
web:
  hosts:
    w1:
    w2: {x: 2}
  vars: {x: 1}
db:
  hosts:
    d1:
  children:
    web:
"""

INI_ALL_SECTION = """\
[all]
a1 v=1
[ungrouped:vars]
u=yes
[g]
a2
[all:vars]
w=all
"""

CASES = {
    "all.ini": INI_ALL_SECTION,
    "groups.ini": INI_GROUPS,
    "precedence.ini": INI_PRECEDENCE,
    "ranges.ini": INI_RANGES,
    "nested.yml": YAML_NESTED,
    "top.yaml": YAML_TOP_GROUPS,
}


def _ansible(path: Path, home: Path) -> dict[str, dict[str, str]]:
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_NOCOLOR": "1",
    }
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    hostvars = listing.pop("_meta")["hostvars"]  # hosts without variables are not listed there
    hosts = {host for group in listing.values() for host in group.get("hosts", ())}
    return {host: {key: var_text(value) for key, value in hostvars.get(host, {}).items()} for host in hosts}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_hosts_and_variables_as_ansible_inventory(name: str, tmp_path: Path) -> None:
    if not ANSIBLE_INVENTORY.exists():
        if os.environ.get("CI"):
            pytest.fail("ansible-inventory is not in the venv: install the `hosts` extra (ansible-core)")
        pytest.skip("ansible-inventory is not in the venv (pip install ansible-core)")
    path = tmp_path / name
    path.write_text(CASES[name])
    mine = {host.name: dict(host.vars) for host in load_inventory(path).hosts}
    assert mine == _ansible(path, tmp_path)


# --------------------------------------------------------------------------- what drills reads


def test_hosts_in_file_order_with_drills_settings(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text(INI_GROUPS)
    inventory = load_inventory(path)
    assert [h.name for h in inventory.hosts] == ["lonely", "w1", "w2", "w3", "www.example.com", "db1"]
    lonely, w1 = inventory.host("lonely"), inventory.host("w1")
    assert (lonely.address, lonely.port, lonely.underlay, lonely.become) == ("10.0.0.9", 2200, "10.0.0.9", False)
    assert (w1.address, w1.user, w1.become, w1.underlay) == ("w1", "deploy", True, "")  # a name: no underlay
    assert inventory.host("www.example.com").port == 2222
    assert inventory.host("db1").vars["flag"] == "true"


def test_yaml_settings_local_ipv6_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yml"
    path.write_text(YAML_NESTED)
    inventory = load_inventory(path)
    assert [h.name for h in inventory.hosts] == ["solo", "s1", "s2", "s3", "s9", "t1"]
    assert inventory.host("s3").local
    t1 = inventory.host("t1")
    assert (t1.address, t1.underlay, t1.become) == ("2001:db8::1", "2001:db8::1", True)
    assert inventory.host("s9").vars["site"] == "rack"  # the child group wins over its parent


def test_ranges_padding_steps_letters_and_underlay(tmp_path: Path) -> None:
    path = tmp_path / "ranges"  # no suffix: INI, as Ansible reads it
    path.write_text(INI_RANGES)
    inventory = load_inventory(path)
    names = [h.name for h in inventory.hosts]
    assert names[:4] == ["e01.lab", "e04.lab", "e07.lab", "e10.lab"]
    assert names[4:10] == ["node-a-1", "node-a-2", "node-b-1", "node-b-2", "node-c-1", "node-c-2"]
    r0 = inventory.host("r0")
    assert (r0.underlay, r0.underlay_mtu) == ("198.51.100.7", 9000)


def test_ssh_settings(tmp_path: Path) -> None:
    path = tmp_path / "ssh.ini"
    path.write_text(
        "h ansible_ssh_private_key_file=/k/id ansible_ssh_common_args='-o StrictHostKeyChecking=no' "
        "ansible_ssh_extra_args=-4 drills_venv=/srv/drills ansible_become=true\n"
    )
    host = load_inventory(path).host("h")
    assert host.key_file == "/k/id"
    assert host.ssh_args == ("-o", "StrictHostKeyChecking=no", "-4")
    assert (host.venv, host.become, host.user) == ("/srv/drills", True, None)


# --------------------------------------------------------------------------- hostile and bad input


def _refused(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert isinstance(caught.value, ScenarioError) and caught.value.exit_code == ExitCode.BAD_INPUT
    assert all(p.file == str(path) for p in caught.value.problems)
    return str(caught.value)


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    text = "h ansible_host=192.0.2.1\n" * (MAX_INVENTORY_BYTES // 24 + 10)
    assert f"the limit for an inventory is 1 MiB ({MAX_INVENTORY_BYTES:,} bytes)" in _refused(tmp_path, "big.ini", text)


def test_a_range_past_the_host_bound_is_refused_before_it_expands(tmp_path: Path) -> None:
    message = _refused(tmp_path, "range.ini", "[g]\nh[1:999999999]\n")
    assert "range.ini:2:1" in message and f"at most {MAX_HOSTS}" in message


def test_many_hosts_in_one_file_are_bounded(tmp_path: Path) -> None:
    text = "".join(f"h{i}\n" for i in range(MAX_HOSTS + 1))
    assert f"more than {MAX_HOSTS} hosts" in _refused(tmp_path, "many.ini", text)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    depth = MAX_GROUP_DEPTH + 4
    lines = ["all:"]
    for level in range(depth):
        lines.append("  " * (2 * level + 1) + "children:")
        lines.append("  " * (2 * level + 2) + f"g{level}:")
    lines.append("  " * (2 * depth + 1) + "hosts: {h1: }")
    assert f"nested more than {MAX_GROUP_DEPTH}" in _refused(tmp_path, "deep.yml", "\n".join(lines) + "\n")


def test_a_loop_of_children_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, "loop.ini", "[a:children]\nb\n[b:children]\na\n[a]\nh\n")
    assert "loop" in message


def test_an_executable_file_is_never_run(tmp_path: Path) -> None:
    path = tmp_path / "dynamic.py"
    marker = tmp_path / "ran"
    path.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    path.chmod(0o755)
    with pytest.raises(InventoryError, match="executable: Ansible would run it"):
        load_inventory(path)
    assert not marker.exists()


def test_an_inventory_plugin_is_refused(tmp_path: Path) -> None:
    message = _refused(tmp_path, "aws_ec2.yml", "# cloud\nplugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    assert "aws_ec2.yml:2:1" in message and "inventory plugin" in message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[web\nh1\n", 1, "not a section header"),
        ("[web]\nh1 user\n", 2, "expected key=value"),
        ("[web:hostvars]\nh1\n", 1, "unknown kind"),
        ("[web]\nh1\n[db:vars]\nx=1\n", 3, "declared nowhere"),
        ("[p:children]\nmissing\n", 2, "declared nowhere"),
        ("[g]\nh1 'unclosed\n", 2, "check its quotes"),
        ("[g]\nh[3:1]\n", 2, "range is empty"),
        ("[g]\nh[1:x]\n", 2, "host range must be"),
        ("[g]\nbad/name\n", 2, "not one drills can use"),
        ("[g]\nh1:\n", 2, "without a port"),
        ("[g]\nh1 ansible_port=70000\n", 2, "from 1 to 65535"),
        ("[g]\nh1 ansible_host='{{ lookup(\"env\", \"X\") }}'\n", 2, "Jinja2 template"),
        ("[g]\nh1\n[g:vars]\ndrills_underlay=somewhere\n", 4, "not an IP address"),
        ("[g]\nh1 drills_underlay_mtu=600\n", 2, "from 1280 to 65535"),
        ("[g]\nh1 drills_weight=-2\n", 2, "not a number from 0"),
        ("[g]\nh1 drills_venv=relative/path\n", 2, "not an absolute path"),
        ("[g]\nh1 ansible_become=maybe\n", 2, "not a boolean"),
        ("all:\n  hosts:\n    h1:\n", 1, "looks like YAML"),
        ("# only comments\n", 1, "names no host"),
    ],
)
def test_bad_ini_lines_are_located(tmp_path: Path, text: str, line: int, words: str) -> None:
    message = _refused(tmp_path, "bad.ini", text)
    assert f"bad.ini:{line}:" in message and words in message, message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("all:\n  hots:\n    h1:\n", 2, "unknown key"),
        ("all:\n  hosts: [h1, h2]\n", 2, "holds a mapping"),
        ("all:\n  hosts:\n    1234:\n", 3, "quote a host name"),
        ("all:\n  hosts:\n    h1: [a]\n", 3, "mapping of variables"),
        ("- h1\n- h2\n", 1, "mapping of groups"),
        ("all:\n  hosts: {h1: {a: 1}\n", 3, "YAML syntax"),  # where the parser notices
    ],
)
def test_bad_yaml_is_located(tmp_path: Path, text: str, line: int, words: str) -> None:
    message = _refused(tmp_path, "bad.yml", text)
    assert f"bad.yml:{line}:" in message and words in message, message


def test_line_length_non_utf8_and_directories(tmp_path: Path) -> None:
    assert f"at most {MAX_LINE_CHARS}" in _refused(tmp_path, "long.ini", "h1 x=" + "y" * MAX_LINE_CHARS + "\n")
    assert "not UTF-8" in _refused(tmp_path, "latin.ini", b"h1 note=caf\xe9\n")
    (tmp_path / "dir").mkdir()
    with pytest.raises(InventoryError, match="a directory"):
        load_inventory(tmp_path / "dir")
    with pytest.raises(InventoryError, match="file not found"):
        load_inventory(tmp_path / "absent.ini")


VARS_FILES = {
    "group_vars/all.yml": "z: from-dir\nshared: all-dir\n",
    "group_vars/web/10-first.yml": "x: web-dir\nshared: web-dir\n",
    "group_vars/web/20-second": "shared: web-dir-2\nport_note: 2\n",
    "group_vars/web/.hidden.yml": "x: hidden\n",
    "group_vars/web/notes.txt": "x: not-read\n",
    "group_vars/prod.json": '{"y": "prod-json", "pj": [1, 2]}',
    "group_vars/db.yml": "",
    "host_vars/w1.yaml": "ansible_user: from-host-vars\nx: host-dir\n",
    "host_vars/db1/main.yml": "flag: off\n",
}


def _with_vars_files(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.ini"
    path.write_text(INI_GROUPS)
    for name, text in VARS_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return path


def test_group_vars_and_host_vars_as_ansible_reads_them(tmp_path: Path) -> None:
    path = _with_vars_files(tmp_path)
    inventory = load_inventory(path)
    w1 = inventory.host("w1")
    assert w1.user == "from-host-vars" and w1.vars["x"] == "host-dir" and w1.vars["shared"] == "web-dir-2"
    assert inventory.host("lonely").vars["z"] == "from-dir"  # group_vars/all over [all:vars]
    if ANSIBLE_INVENTORY.exists():
        mine = {host.name: dict(host.vars) for host in inventory.hosts}
        assert mine == _ansible(path, tmp_path / "home")


def test_bad_vars_files_are_located_in_them(tmp_path: Path) -> None:
    path = _with_vars_files(tmp_path)
    (tmp_path / "host_vars" / "w2.yml").write_text("# w2\nansible_port: twenty-two\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value).endswith("host_vars/w2.yml:2:1: host w2: ansible_port: 'twenty-two' is not a whole number from 1 to 65535")
    (tmp_path / "host_vars" / "w2.yml").write_text("- a list\n")
    with pytest.raises(InventoryError, match=r"w2\.yml:1:1: a vars file holds a mapping"):
        load_inventory(path)
    (tmp_path / "host_vars" / "w2.yml").unlink()
    (tmp_path / "host_vars" / "w2.yml").symlink_to("/etc/hostname")
    with pytest.raises(InventoryError, match=r"w2\.yml:1:1: a symbolic link"):
        load_inventory(path)


def test_a_group_name_cannot_reach_outside_group_vars(tmp_path: Path) -> None:
    assert "no '/'" in _refused(tmp_path, "slash.ini", "[../../etc]\nh1\n")
    assert "no '/'" in _refused(tmp_path, "dots.yml", "all:\n  children:\n    ..:\n      hosts: {h1: }\n")
    with pytest.raises(InventoryError, match="file not found"):
        load_inventory(tmp_path / "hots.ini")


def test_the_cli_reports_a_bad_inventory_as_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "bad.ini"
    inventory.write_text("[g]\nh1 ansible_port=x\n")
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "three-hosts-cable-cut.yaml"
    for command in ("plan", "validate"):
        assert main([command, "--inventory", str(inventory), str(scenario)]) == ExitCode.BAD_INPUT
        assert "bad.ini:2:1: host h1: ansible_port:" in capsys.readouterr().err
    assert main(["doctor", "--inventory", str(inventory)]) == ExitCode.BAD_INPUT
