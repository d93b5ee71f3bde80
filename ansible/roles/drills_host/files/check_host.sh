#!/bin/sh
# What drills needs on a host, checked at once and reported together (one line each):
# root, Python MAJOR.MINOR on ARCH (the controller's: its wheels are binary), the venv module,
# ip/tc, and the kernel's network namespaces, veth and vxlan, tried in a scratch namespace that
# is removed again.
# usage: check_host.sh PYTHON_MAJOR_MINOR ARCH
want_py="$1"
want_arch="$2"
problems=""
problem() { problems="${problems}
  $1"; }

[ "$(id -u)" = 0 ] || problem "not root (uid $(id -u)): drills creates namespaces; log in as root or set ansible_become=true"
python="python$want_py"
if ! command -v "$python" >/dev/null 2>&1; then
    have="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
    problem "no $python (python3 here is $have): the controller's wheels are for Python $want_py; install it, or run the controller with this host's Python"
else
    arch="$("$python" -c 'import platform; print(platform.machine())')"
    [ "$arch" = "$want_arch" ] || problem "$python is for $arch, the controller's wheels for $want_arch"
    "$python" -c 'import ensurepip, venv' 2>/dev/null || problem "$python has no venv/ensurepip module: apt-get install python3-venv"
fi
for tool in ip tc; do
    command -v "$tool" >/dev/null 2>&1 || problem "no \`$tool\` command: apt-get install iproute2"
done

if command -v ip >/dev/null 2>&1; then
    ns="drills-check-$$"
    if ip netns add "$ns" 2>/dev/null; then
        trap 'ip netns del "$ns" 2>/dev/null' EXIT
        ip -n "$ns" link add dck0 type veth peer name dck1 2>/dev/null ||
            problem "the kernel cannot make veth pairs (CONFIG_VETH)"
        ip -n "$ns" link add dckx type vxlan id 4242 dstport 14789 2>/dev/null ||
            problem "the kernel cannot make vxlan interfaces (CONFIG_VXLAN): cross-host links need them"
    else
        problem "cannot create a network namespace (ip netns add failed: no CONFIG_NET_NS, or not root)"
    fi
fi

if [ -n "$problems" ]; then
    echo "this host cannot run drills:$problems" >&2
    exit 1
fi
echo "root, $python on $want_arch, namespaces, veth, vxlan: ok"
