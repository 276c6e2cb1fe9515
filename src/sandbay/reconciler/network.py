"""Re-enforces the network policy of restricted running environments now and then:
starts made by other processes (a separate `sandbay reconciler`) and anything that
reset a namespace's rules are caught within one interval."""

from sandbay.kit.loops import PeriodicLoop
from sandbay.services.access.network import NetworkEnforcer


class NetworkPolicyLoop(PeriodicLoop):
    name = "network-policy"

    def __init__(self, *, enforcer: NetworkEnforcer, interval: float) -> None:
        super().__init__(interval)
        self._enforcer = enforcer

    async def sweep(self) -> None:
        await self._enforcer.sweep()
