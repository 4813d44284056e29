"""Where sinks and cameras may connect: never to the platform's own services, by any alias.

A webhook sink sends a method, headers and body of the client's choosing; an MQTT or camera URL
opens a connection. Without a rule they could call the unauthenticated Prefect and MLflow servers,
an S3 endpoint, the API itself or a pipeline's control endpoint on this host. The rule:

- **Refused**: a connection to a *platform endpoint* (:func:`platform_endpoints`): the API port, the
  Prefect and MLflow ports (their external servers when configured), the database server and S3
  endpoint when they are network services, and the pipeline control port range
  (``INSPECT_PIPELINE_CONTROL_PORTS``), on the host that serves it. A service on *this* machine is
  matched by every alias of the machine: 127.0.0.0/8, ``::1``, 0.0.0.0/8, ``::``, every address of
  its network interfaces, names that resolve to any of them, IPv4-mapped and IPv4-compatible IPv6
  forms, and the decimal, hex and octal spellings of IPv4 (the resolver reads them as addresses).
  Link-local and cloud-metadata addresses are refused on every port.
- **Allowed**: any other port, this machine's included. A broker or an event receiver on loopback
  is common on a line PC.

The API checks when a config is written (422). The runtime checks again where it connects, on
the address it connects to: :func:`pinned_address` resolves once, checks every answer, and the
caller connects to that very address, so a name that resolves elsewhere a moment later (DNS
rebinding) changes nothing. The webhook sink follows no redirect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil
from sqlalchemy.engine import make_url

from infra.settings import Settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# 169.254.169.254 (AWS, GCP, Azure, ...) and fd00:ec2::254 (AWS over IPv6) serve cloud credentials.
BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
# "This host" on Linux: 0.0.0.0/8 connects to the local machine like loopback does.
_THIS_HOST_V4 = ipaddress.ip_network("0.0.0.0/8")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")

DEFAULT_PORTS = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883, "rtsp": 554, "rtsps": 322}
_DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


class OutboundRefused(ValueError):
    """The URL leads to an address sinks and cameras may not reach; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    """One of the platform's own services: its host (None: this machine, by every alias) and ports."""

    name: str
    host: str | None
    ports: range


def _port_range(port: int) -> range:
    return range(port, port + 1)


def _url_endpoint(name: str, url: str) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(name, parts.hostname, _port_range(parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)))


def platform_endpoints(settings: Settings) -> tuple[Endpoint, ...]:
    """Every service of this platform a sink or camera must not reach (see the module docstring)."""
    endpoints = [Endpoint("the Geti Inspect API", None, _port_range(settings.port)),
                 Endpoint("a pipeline control endpoint", None, settings.pipeline_control_port_range)]
    endpoints.append(_url_endpoint("Prefect", settings.prefect_api_url) if settings.prefect_api_url
                     else Endpoint("Prefect", None, _port_range(settings.prefect_port)))
    endpoints.append(_url_endpoint("MLflow", settings.mlflow_tracking_uri)
                     if settings.mlflow_tracking_uri and "://" in settings.mlflow_tracking_uri
                     and not settings.mlflow_tracking_uri.startswith("file:")
                     else Endpoint("MLflow", None, _port_range(settings.mlflow_port)))
    database = make_url(settings.resolved_database_url)
    if database.host:
        port = database.port or _DATABASE_PORTS.get(database.get_backend_name(), 0)
        endpoints.append(Endpoint("the database", database.host, _port_range(port)))
    if settings.storage_backend == "s3" and settings.s3_endpoint_url:
        endpoints.append(_url_endpoint("the S3 endpoint", settings.s3_endpoint_url))
    return tuple(endpoints)


def canonical(address: str) -> IpAddress:
    """The address as the kernel will use it: IPv4 for IPv4-mapped/-compatible IPv6, no zone index."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _V4_COMPATIBLE and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def resolve(host: str) -> list[IpAddress]:
    """What connecting to ``host`` may reach: the literal itself, else every address the resolver answers
    (which reads decimal, hex and octal IPv4 spellings as addresses); empty when it does not resolve."""
    host = host.strip("[]")
    try:
        return [canonical(host)]
    except ValueError:
        pass
    try:
        # In the resolver's order of preference, once each.
        return list(dict.fromkeys(canonical(str(info[4][0])) for info in socket.getaddrinfo(host, None)))
    except (OSError, UnicodeError, ValueError):
        return []


def own_addresses() -> set[IpAddress]:
    """Every address of this machine's network interfaces, now (interfaces come and go)."""
    found: set[IpAddress] = set()
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(canonical(entry.address))
                except ValueError:
                    continue
    return found


def is_this_host(ip: IpAddress, own: set[IpAddress]) -> bool:
    return ip.is_loopback or ip.is_unspecified or ip in own or (ip.version == 4 and ip in _THIS_HOST_V4)


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)


def refusal(addresses: Iterable[IpAddress], port: int, endpoints: Iterable[Endpoint]) -> str | None:
    """Why connecting to ``port`` at any of ``addresses`` is refused, or None when it is allowed."""
    addresses = list(addresses)
    for ip in addresses:
        if any(ip in network for network in BLOCKED_NETWORKS):
            return f"{ip}, a link-local or cloud-metadata address"
    own = own_addresses()
    for endpoint in endpoints:
        if port not in endpoint.ports:
            continue
        targets = set() if endpoint.host is None else set(resolve(endpoint.host))
        local = endpoint.host is None or any(is_this_host(ip, own) for ip in targets)
        for ip in addresses:
            if (local and is_this_host(ip, own)) or ip in targets:
                return f"{ip}, and port {port} there is {endpoint.name} of this platform"
    return None


def check(url: str, endpoints: Iterable[Endpoint]) -> list[IpAddress]:
    """The addresses the URL's host resolves to here, or OutboundRefused when any of them is refused."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    addresses = resolve(host)
    reason = refusal(addresses, url_port(url), endpoints)
    if reason is not None:
        raise OutboundRefused(f"host {host!r} resolves to {reason}: sinks and cameras may not reach it "
                              "(docs/operations.md, 'Where sinks and cameras may connect')")
    return addresses


def pinned_address(url: str, endpoints: Iterable[Endpoint]) -> IpAddress:
    """The checked address to connect to for ``url`` (the first the resolver answered), resolved once:
    connect to it rather than to the name, so the name cannot resolve elsewhere in between."""
    addresses = check(url, endpoints)
    if not addresses:
        raise OSError(f"cannot resolve {urlsplit(url).hostname!r}")
    return addresses[0]


def with_host(url: str, address: IpAddress) -> str:
    """``url`` with its host replaced by ``address`` (credentials and port kept)."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{userinfo}{at}{host}{port}").geturl()
