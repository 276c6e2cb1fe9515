"""The native API's routes, by capability, in the order they are matched."""

from fastapi import APIRouter

from sandbay.api.v1 import access, events, health, runners, work
from sandbay.api.v1.agents import providers, runs
from sandbay.api.v1.egress import secrets
from sandbay.api.v1.environments import pools, snapshots
from sandbay.api.v1.environments import routes as environments
from sandbay.api.v1.inside import exec, files, observe
from sandbay.api.v1.tenancy import keys, orgs

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        health, environments, keys, orgs, events, pools, work, exec, files, observe, access,
        runs, providers, snapshots, secrets, runners,
    )
)  # fmt: skip
