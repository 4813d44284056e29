"""Start, watch and stop the processes `geti-inspect serve` runs beside the API."""

from infra.supervisor.process import ChildSpec, ManagedProcess, RestartPolicy, stop_processes
from infra.supervisor.stack import Stack, StackError, StackOptions

__all__ = ["ChildSpec", "ManagedProcess", "RestartPolicy", "Stack", "StackError", "StackOptions", "stop_processes"]
