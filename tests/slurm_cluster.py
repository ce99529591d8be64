"""A single-node SLURM on this machine, from Debian's packages, for the test of profiles/slurm.

Debian 12 ships SLURM 22.05 (slurmctld, slurmd, slurm-client) and munge; `make test-slurm`
installs them. The node declares 16 CPUs, 128 GB and 4 GPUs whatever the machine has
(`SlurmdParameters=config_overrides`; the GPUs are empty files), so profiles/slurm's requests
are granted as they are. No accounting daemon: job states come from squeue (MinJobAge keeps
finished jobs listed for an hour). The configuration goes to /etc/slurm, where srun inside
the jobs looks for it (Snakemake's SLURM plugin clears SLURM_* variables such as SLURM_CONF).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CONF_DIR = Path("/etc/slurm")
MARK = "# written by alignprune's tests/slurm_cluster.py"
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def slurm_conf(host: str, state: Path) -> str:
    return f"""{MARK}
ClusterName=alignprune-test
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={state}/munge.socket
CredType=cred/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
GresTypes=gpu
NodeName={host} CPUs=16 RealMemory=128000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _problem() -> str | None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): run `make test-slurm`, which installs "
                "Debian's slurmctld, slurmd, slurm-client and munge")
    if os.geteuid() != 0:
        return "the SLURM test starts slurmd and writes /etc/slurm: run it as root (CI does)"
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and MARK not in conf.read_text():
        return f"{conf} belongs to a SLURM of this machine: run the test on a machine without one"
    return None


@contextmanager
def single_node_slurm(state: Path) -> Iterator[str]:
    """Start munged, slurmctld and slurmd; yield the node name; stop them and remove the config."""
    problem = _problem()
    if problem:
        raise RuntimeError(problem)
    host = socket.gethostname().split(".")[0]
    for folder in ("ctld", "spool"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    for index in range(4):
        (state / f"gpu{index}").touch()
    CONF_DIR.mkdir(exist_ok=True)
    (CONF_DIR / "slurm.conf").write_text(slurm_conf(host, state))
    (CONF_DIR / "gres.conf").write_text(f"{MARK}\nNodeName={host} Name=gpu File={state}/gpu[0-3]\n")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key = state / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
    daemons: list[subprocess.Popen] = []

    def start(*command: str) -> None:  # output to the daemon's own file, not the test's
        with open(state / f"{command[0]}.out", "w") as out:
            daemons.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))

    try:
        start("munged", "--foreground", "--force", f"--socket={state}/munge.socket", f"--key-file={key}",
              f"--pid-file={state}/munged.pid", f"--log-file={state}/munged.log", f"--seed-file={state}/munge.seed")
        _wait(lambda: (state / "munge.socket").exists(), "munged", state)
        start("slurmctld", "-D")
        start("slurmd", "-D")
        _wait(lambda: _node_state() == "idle", "the node to come up idle", state)
        yield host
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for name in ("slurm.conf", "gres.conf"):
            if (CONF_DIR / name).exists() and MARK in (CONF_DIR / name).read_text():
                (CONF_DIR / name).unlink()


def _node_state() -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return result.stdout.strip()


def _wait(ready, what: str, state: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}"
                             for log in sorted([*state.glob("*.log"), *state.glob("*.out")]))
            raise RuntimeError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.5)


def jobs_in_queue() -> list[tuple[str, str, str, dict]]:
    """(job id, name, state, what it asked for) of every job SLURM still lists, finished ones
    included; what it asked for: cpus, memory (MB), time limit (minutes) and TRES per job."""
    fields = "JobID:|,Name:|,State:|,NumCPUs:|,MinMemory:|,TimeLimit:|,tres-per-job:|"
    result = subprocess.run(["squeue", "-h", "-t", "all", "--Format", fields], capture_output=True, text=True,
                            check=True)
    jobs = []
    for line in result.stdout.splitlines():
        job_id, name, state, cpus, memory, limit, tres = (part.strip() for part in line.split("|")[:7])
        jobs.append((job_id, name, state, {"cpus": int(cpus), "mem_mb": _megabytes(memory),
                                           "minutes": _minutes(limit), "tres": tres}))
    return jobs


def _megabytes(text: str) -> int:
    number, unit = float(text[:-1]), text[-1].upper()
    return int(number * {"M": 1, "G": 1024, "T": 1024**2}[unit])


def _minutes(text: str) -> int:
    """SLURM's [days-]hours:minutes:seconds (or minutes:seconds) as whole minutes."""
    days, _, clock = text.rpartition("-")
    parts = [int(x) for x in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 1440 + parts[0] * 60 + parts[1] + (parts[2] > 0)
