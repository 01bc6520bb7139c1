"""Seeded fuzzing of the real CLI (issue 13): mutated image specs, fabrics, schedule files,
OVF/OVA packages and argument lists go through `builder.cli.main` in a worker process.

Every case must end with exit 0, 1 or 2, no traceback, within a per-case deadline and under a
memory limit the worker sets on itself (RLIMIT_AS: its size after imports + 300 MiB). The
mutator is seeded (FUZZ_SEED, FUZZ_CASES to change them): a failure names its case number and
the seed, and rerunning with the same seed reproduces it.
"""

from __future__ import annotations

import base64
import copy
import gzip
import io
import json
import os
import random
import select
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("FUZZ_SEED", "1313"))
CASES = int(os.environ.get("FUZZ_CASES", "300"))
DEADLINE = 10  # seconds per case
MEMORY = 300 << 20  # bytes per case above the worker's size after imports

INTERESTING = [
    "", " ", "-", "--help", "..", "../../etc/passwd", "/etc/passwd", "a" * 300, "x" * 70000, "\n", "x\ny",
    "'; touch /tmp/fuzz-pwned; '", '"', "{", "}", "}\n}\nservice {", "{{ 7*7 }}", "{{ cycler.__init__ }}",
    "$(id)", "`id`", "\x00", "\x1b[31m", "é", "\udcff", "-oProxyCommand=id", "file:///etc/passwd",
    "http://u:p@h", "https://", "999999999999999999999999", "-1", "0", "1e309", "NaN", "2T", "999999999G",
    "byte * 10^30000000", "99 99 * * *", "Mars/Olympus_Mons", "ff05::1", "239.0.0.1", "10.0.0.0/8", "::/0",
    True, False, None, 0, -1, 2**63, 1.5, [], {}, ["a"], {"a": 1},
]


# --- worker: runs cases in-process, bounded ----------------------------------------------------

def worker() -> None:  # pragma: no cover - runs in the subprocess
    import contextlib
    import resource
    import signal
    import tempfile
    import traceback

    from builder.cli import main

    size = int(next(line for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmSize:")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY, size + MEMORY))

    def alarm(*_):
        raise TimeoutError(f"case ran past its {DEADLINE} s deadline")

    signal.signal(signal.SIGALRM, alarm)
    home = os.getcwd()
    for line in sys.stdin:
        case = json.loads(line)
        result: dict = {"code": None, "error": None}
        out, err = io.StringIO(), io.StringIO()
        with tempfile.TemporaryDirectory(prefix="bxfuzz") as d:
            for rel, b64 in case["files"].items():
                p = Path(d) / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(base64.b64decode(b64))
            os.chdir(d)
            signal.alarm(DEADLINE)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    result["code"] = main(case["argv"])
            except BaseException:
                result["error"] = traceback.format_exc(limit=8)[-3000:]
            finally:
                signal.alarm(0)
                os.chdir(home)
        text = out.getvalue() + err.getvalue()
        if "Traceback (most recent call last)" in text:
            result["error"] = "printed a traceback:\n" + text[-3000:]
        result["tail"] = text[-300:]
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class Worker:
    def __init__(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GITLAB", "CI_", "BUILDER_"))}
        # the checkout first, then whatever the caller's interpreter needs to find its packages
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        self.p = subprocess.Popen(
            [sys.executable, "-c", "from tests.unit.test_fuzz_cli import worker; worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)

    def run(self, argv: list[str], files: dict[str, bytes]) -> dict:
        case = {"argv": argv, "files": {k: base64.b64encode(v).decode() for k, v in files.items()}}
        self.p.stdin.write(json.dumps(case) + "\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], DEADLINE + 5)
        line = self.p.stdout.readline() if ready else ""
        if not line:  # hung in C code past the alarm, or killed (memory)
            self.close()
            return {"code": None, "error": "worker died or hung", "tail": ""}
        return json.loads(line)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# --- mutators ----------------------------------------------------------------------------------

def _text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(5)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[i:i] = _text(rng.choice(INTERESTING)).encode("utf-8", "surrogatepass")
        elif op == 2:
            del b[i:i + rng.randint(1, 64)]
        elif op == 3:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)][:4096]
        else:
            b = b[:i]
    return bytes(b)


def mutate_tree(rng: random.Random, doc):
    """Replace, delete or add values at random paths of a loaded YAML document."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 2)):
        node, key = None, None
        cur = doc
        for _ in range(rng.randint(1, 6)):
            if isinstance(cur, dict) and cur:
                node, key = cur, rng.choice(list(cur))
            elif isinstance(cur, list) and cur:
                node, key = cur, rng.randrange(len(cur))
            else:
                break
            cur = node[key]
        if node is None:
            continue
        op = rng.randrange(4)
        value = rng.choice(INTERESTING)
        if isinstance(value, str) and "\udcff" in value:
            value = value.replace("\udcff", "?")
        if op == 0:
            node[key] = value
        elif op == 1 and isinstance(node, dict):
            del node[key]
        elif op == 2 and isinstance(node, dict):
            node[rng.choice(["colour", "dir", "hostname", "replicas", "sysctls", "description"])] = value
        else:
            node[key] = copy.deepcopy(rng.choice([value, node[key], [node[key]] * rng.randint(0, 3)]))
    return doc


def mutate_yaml(rng: random.Random, text: str) -> bytes:
    if rng.random() < 0.6:
        return yaml.safe_dump(mutate_tree(rng, yaml.safe_load(text)), allow_unicode=True).encode()
    return mutate_bytes(rng, text.encode())


# --- case generators: (argv, files) ------------------------------------------------------------

def image_case(rng: random.Random):
    name = rng.choice(["minimal", "ceph-training"])
    d = ROOT / "images" / name
    files = {f"images/{name}/{p.relative_to(d)}": p.read_bytes() for p in d.rglob("*") if p.is_file()}
    files[f"images/{name}/image.yaml"] = mutate_yaml(rng, (d / "image.yaml").read_text())
    return ["pipeline", "generate", "--images", name], files


def fabric_case(rng: random.Random):
    src = rng.choice(["seed-poc", "ceph-lab"])
    argv = ["fabric", "render", "f.yaml", "--format", rng.choice(["vyos", "iproute2", "radvd", "networkd"])]
    if rng.random() < 0.3:
        argv += ["--node", rng.choice(["router", "ubuntu", "image", "nope", "-x"])]
    return argv, {"f.yaml": mutate_yaml(rng, (ROOT / "fabrics" / f"{src}.yaml").read_text())}


def schedule_case(rng: random.Random):
    argv = ["schedule", "sync", "--file", "s.yaml", "--dry-run"] + (["--json"] if rng.random() < 0.5 else [])
    return argv, {"s.yaml": mutate_yaml(rng, (ROOT / "ci" / "schedules.yaml").read_text())}


def ova_case(rng: random.Random):
    fixture = rng.choice(sorted((ROOT / "tests" / "fixtures" / "ovf").glob("*.ovf")))
    ovf = mutate_bytes(rng, fixture.read_bytes()) if rng.random() < 0.9 else fixture.read_bytes()
    argv = ["ova", "inspect"] + (["--json"] if rng.random() < 0.5 else [])
    if rng.random() < 0.4:
        return argv + ["vm.ovf"], {"vm.ovf": ovf, "vm.mf": mutate_bytes(rng, b"SHA1 (disk.vmdk) = 00\n")}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("vm.ovf", ovf), ("disk.vmdk", b"disk" * rng.randint(0, 300)),
                           ("vm.mf", mutate_bytes(rng, b"SHA256 (disk.vmdk) = " + b"0" * 64 + b"\n"))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    r = rng.random()
    if r < 0.3:
        data = data[: rng.randrange(len(data))]
    elif r < 0.4:
        data = gzip.compress(data)
    elif r < 0.6:
        data = mutate_bytes(rng, data)
    return argv + ["vm.ova"], {"vm.ova": data}


def _word(rng: random.Random) -> str:
    v = _text(rng.choice(INTERESTING))
    return v.replace("\x00", "").replace("\udcff", "?") or "x"


def args_case(rng: random.Random):
    w = lambda: _word(rng)
    forms = [
        lambda: ["publish", w(), w(), "--output", "out"],
        lambda: ["publish", "minimal", w(), "--to", "gitlab", "--project", w()],
        lambda: ["runner", "register", "--local", "--url", w(), "--runner-type", "instance_type"],
        lambda: ["ova", "inspect", w()],
        lambda: ["fabric", "render", w(), "--format", w()],
        lambda: ["pipeline", "generate", "--images", w(), "--tag", w()],
        lambda: ["schedule", "sync", "--file", w(), "--project", w(), "--dry-run"],
        lambda: [w(), w()],
        lambda: [rng.choice(["vm", "image", "fabric", "ova", "runner", "publish", "pipeline", "schedule",
                             "doctor"]), "--help"],
    ]
    return rng.choice(forms)(), {"images/x/image.yaml": b"name: x\nversion: 1.0.0\n"}


KINDS = {"image": image_case, "fabric": fabric_case, "schedule": schedule_case, "ova": ova_case, "args": args_case}


@pytest.fixture(scope="module")
def worker_proc():
    w = Worker()
    yield w
    w.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", list(KINDS))
def test_fuzz_cli(kind, worker_proc):
    rng = random.Random(f"{SEED}-{kind}")
    failures, codes = [], {}
    for i in range(CASES):
        argv, files = KINDS[kind](rng)
        if worker_proc.p.poll() is not None:
            worker_proc.__init__()
        res = worker_proc.run(argv, files)
        codes[res["code"]] = codes.get(res["code"], 0) + 1
        if res["error"] or res["code"] not in (0, 1, 2):
            failures.append(f"case {kind}#{i} (FUZZ_SEED={SEED}) argv={argv!r}: code {res['code']}\n"
                            f"{res['error'] or res['tail']}")
    print(f"{kind}: {CASES} cases, exit codes {codes}")
    assert not failures, f"{len(failures)} of {CASES} cases broke the contract; first:\n" + "\n".join(failures[:3])
    assert len(codes) > 1 or kind == "schedule", f"{kind}: every case ended alike ({codes}): the fuzzer is vacuous"
