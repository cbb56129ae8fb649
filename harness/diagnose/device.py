"""Running the device side of a diagnosis through an executor (LocalExecutor or SshExecutor).

The agent package is what runs on the host either way: locally as ``harness_agent``, on an SSH
host as the pushed ``harness_agent`` package (PYTHONPATH set to its unpacked copy), with model
files, inputs and reference tensors pushed content-addressed by SshExecutor.push_blob. Tensors
the device dumps (a reference run's .npz) stay on the device, in a per-diagnosis directory, and
are compared there; only statistics come back.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from pathlib import Path

from ..agentproc import AgentOutcome, outcome_to_result, parse_lines
from ..executor_local import LocalExecutor, spawn_agent

MODULE = "diagnose_main"


class DeviceRunner:
    def __init__(self, executor, local_dir: Path, diagnosis_id: str):
        self.ex = executor if executor is not None else LocalExecutor()
        self.local_dir = Path(local_dir)
        self.local_dir.mkdir(parents=True, exist_ok=True)
        self.diagnosis_id = diagnosis_id
        self.is_local = isinstance(self.ex, LocalExecutor)
        self._remote_dir: str | None = None

    @property
    def host(self) -> str:
        return getattr(self.ex, "name", "local")

    def device_path(self, name: str) -> str:
        """A path on the device for a file the device writes (per-diagnosis directory)."""
        if self.is_local:
            return str(self.local_dir / name)
        if self._remote_dir is None:
            self.ex.setup()
            self._remote_dir = f"{self.ex.work}/diagnose/{self.diagnosis_id}"
        return f"{self._remote_dir}/{name}"

    def put(self, local: Path | str, kind: str) -> str:
        if self.is_local:
            return str(local)
        return self.ex.push_blob(Path(local), kind)

    def unsupported(self, engine: str, version: str = "installed") -> str | None:
        return self.ex.unsupported(engine, version)

    # -- diagnose_main jobs ------------------------------------------------------------
    def run(self, job: dict, timeout_s: float, local_paths: tuple[str, ...] = ()) -> dict:
        """Run one diagnose_main job. files/inputs are coordinator paths (pushed when remote);
        keys named in local_paths hold coordinator paths too, other path keys device paths."""
        reason = self.unsupported(job["engine"], job.get("version", "installed"))
        if reason:
            return {"status": "unsupported", "error": reason}
        job = dict(job)
        job["files"] = {k: self.put(v, "model") for k, v in job["files"].items()}
        job["inputs"] = [self.put(p, "input") for p in job["inputs"]]
        for k in local_paths:
            if job.get(k):
                job[k] = self.put(job[k], "reference")
        if self.is_local:
            return self._run_local(job, timeout_s)
        return self._run_ssh(job, timeout_s)

    def _run_local(self, job: dict, timeout_s: float) -> dict:
        runtime = getattr(self.ex, "runtime", None)  # the Python for (engine, version)
        python = runtime(job["engine"], job.get("version", "installed")) if runtime else \
            self.ex.python
        return spawn_agent(python, f"harness_agent.{MODULE}", job, timeout_s)

    def _run_ssh(self, job: dict, timeout_s: float) -> dict:
        from ..fleet.executor import AGENT_PKG, KILL_AFTER_S, SSH_SLACK_S
        from ..fleet.transport import HostUnreachable
        ex = self.ex
        try:
            ex.setup()
            python = ex.runtime(job["engine"], job.get("version", "installed"))
            job["state_dir"] = f"{ex.work}/state"
            blob = base64.b64encode(json.dumps(job).encode()).decode()
            argv = ["setsid", "timeout", "-k", str(KILL_AFTER_S), str(int(timeout_s) + 1),
                    python, "-m", f"{AGENT_PKG}.{MODULE}", "--b64", blob]
            t0 = time.monotonic()
            r = ex.t.run(argv, timeout=timeout_s + KILL_AFTER_S + SSH_SLACK_S,
                         env_prefix=f"PYTHONPATH={shlex.quote(ex.agent_root)} ")
            elapsed = time.monotonic() - t0
        except HostUnreachable as e:
            return {"status": "unreachable", "error": str(e)}
        result, progress = parse_lines(r.stdout)
        timed_out = result is None and (r.rc == 124 or (r.rc == 137 and elapsed >= timeout_s))
        rc = None if timed_out else (-9 if r.rc == 137 else r.rc)
        return outcome_to_result(AgentOutcome(result, progress, rc, timed_out, r.stderr[-2000:]),
                                 timeout_s)

    # -- the normal measurement path ---------------------------------------------------------
    def measure(self, job: dict, timeout_s: float) -> dict:
        """One measurement through the executor's own run_job (python -m <agent> JOB)."""
        return self.ex.run_job(job, timeout_s)

    def cleanup(self) -> None:
        """Remove what this diagnosis left on a remote device (local files stay with the
        diagnosis directory)."""
        if not self.is_local and self._remote_dir:
            try:
                self.ex.t.run(["rm", "-rf", self._remote_dir])
            except Exception:  # noqa: BLE001 - best effort
                pass
