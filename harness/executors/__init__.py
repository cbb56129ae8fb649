"""Executors: where the agent runs. ``LocalExecutor`` (this machine) and ``SshExecutor`` (an
inventory host) implement ``Executor`` (base.py) and differ only in launching and pushing."""

from .base import AgentExit, Executor, NoRuntime

__all__ = ["AgentExit", "Executor", "NoRuntime"]
