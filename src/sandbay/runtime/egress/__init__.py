"""Egress by name, enforced outside the environment: a resolver, a proxy and the
per-environment CA they need (see `gateway`)."""

from sandbay.runtime.egress.gateway import EgressGateway, EgressPorts, Refusal
from sandbay.runtime.egress.resolver import Resolver

__all__ = ["EgressGateway", "EgressPorts", "Refusal", "Resolver"]
