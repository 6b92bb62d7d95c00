#!/usr/bin/env python3
"""Load benchmark of the medical-records pages over a real socket.

Starts the built server on a free loopback port with a temporary home, creates an admin and a
doctor with the command line, turns the per-address rate limit and sign-in throttling off at
/admin/security, seeds N patients (each with C consultations and V vaccinations) through the
pages themselves (validation, sealing, audit: the app's own code path), signs the doctor and
one patient in, and runs `wrk --latency` against the doctor's view of that patient
(GET /patients/<id>) and the patient's own page (GET /records) with the session's cookies and
User-Agent. Prints requests/s, p50 and p99 per run and their medians, and the server's peak
RSS (VmHWM). Every wrk run is checked against the server's own /metrics: all requests it
answered in that window must be 200 (wrk itself counts a 303 to /login as a success).

Usage (from the repository root; builds nothing):

    cargo build --release --bin medvault
    python3 bench/records_load.py [target/release/medvault] [--patients 1000] \
        [--connections 8,16,32] [--duration 20] [--runs 3] [--compare] [--during-backups] \
        [--perf]

Needs `wrk` (apt-get install -y wrk) and Python's `requests`; `--perf` needs `perf`.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_AGENT = "medvault-bench/1.0 (records_load.py; wrk)"
ADMIN_PASSWORD = "bench admin passphrase, long enough"
DOCTOR_PASSWORD = "bench doctor passphrase, long enough"
PATIENT_PASSWORD = "bench patient passphrase, long enough"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
VACCINES = ["Hepatitis B", "Tetanus", "Measles-Mumps-Rubella", "Influenza", "Varicella"]
DEPARTMENTS = ["Cardiology", "General medicine", "Orthopaedics", "Dermatology", "Neurology"]


def log(*parts) -> None:
    print(*parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# A browser-like client: one User-Agent, the session's cookies, the page's csrf_token and an
# Origin of medvault itself on every form post.


class Browser:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.base + path, timeout=60, **kw)

    def csrf(self, path: str) -> str:
        r = self.get(path)
        r.raise_for_status()
        m = CSRF.search(r.text)
        if not m:
            raise SystemExit(f"no csrf_token on {path} (landed on {r.url})")
        return m.group(1)

    def post(self, path: str, data: dict, token: str, follow: bool = True) -> requests.Response:
        return self.http.post(
            self.base + path,
            data={**data, "csrf_token": token},
            headers={"Origin": self.base},
            allow_redirects=follow,
            timeout=120,
        )

    def sign_in(self, username: str, password: str) -> requests.Response:
        token = self.csrf("/login")
        r = self.post("/login", {"username": username, "password": password}, token)
        if r.status_code != 200 or "/login" in r.url.replace(self.base, "").split("?")[0]:
            raise SystemExit(f"sign-in of {username} failed: {r.status_code} at {r.url}")
        return r

    def cookie_header(self) -> str:
        """Every cookie the sign-in set (the private session cookie and the guest csrf cookie),
        without a flash message."""
        jar = {c.name: c.value for c in self.http.cookies if c.name != "_flash"}
        if "mv_session" not in jar:
            raise SystemExit(f"no session cookie in {sorted(jar)}")
        return "; ".join(f"{k}={v}" for k, v in sorted(jar.items()))

    def clone(self) -> "Browser":
        """Another connection pool for another thread, with the same session (same client
        address and User-Agent, so the session binding holds)."""
        other = Browser(self.base)
        for c in self.http.cookies:
            if c.name != "_flash":
                other.http.cookies.set(c.name, c.value, domain=c.domain, path=c.path)
        return other


# ---------------------------------------------------------------------------------------------
# The server.


class Server:
    def __init__(self, binary: str, home: str, port: int, log_level: str | None,
                 template_dir: str | None):
        self.binary, self.home, self.port = binary, home, port
        self.env = dict(
            os.environ,
            MEDVAULT_HOME=home,
            ROCKET_PORT=str(port),
            ROCKET_ADDRESS="127.0.0.1",
        )
        if log_level:
            self.env["MEDVAULT_LOG"] = log_level
        if template_dir:
            self.env["MEDVAULT_TEMPLATE_DIR"] = os.path.abspath(template_dir)
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(home, "server.log")

    def cli_user(self, level: str, username: str, password: str) -> None:
        # The command line opens the database itself: run it while no server holds the home.
        subprocess.run(
            [self.binary, "user", "create", "--level", level, "--username", username],
            input=password + "\n", text=True, env=self.env, cwd=REPO, check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary], env=self.env, cwd=REPO, stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server stopped at start; see {self.log_path}:\n"
                                 + open(self.log_path, errors="replace").read()[-3000:])
            try:
                r = requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not answer /health within 60 s")

    def status(self) -> dict:
        fields = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return fields

    def rss_kib(self, key: str = "VmRSS") -> int:
        return int(self.status()[key].split()[0])

    def cpu_seconds(self) -> tuple:
        """(user, system) CPU seconds of the server so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            after_comm = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return int(after_comm[11]) / ticks, int(after_comm[12]) / ticks

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM to this PID only: Rocket shuts down gracefully
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log_file.close()


def metrics_counts(base: str) -> dict:
    """medvault_http_requests_total by (method, route, status), from the loopback /metrics."""
    text = requests.get(base + "/metrics", timeout=30).text
    counts = {}
    for m in re.finditer(
        r'^medvault_http_requests_total\{method="([^"]*)",route="([^"]*)",status="(\d+)"\} (\d+)$',
        text, re.M,
    ):
        counts[(m.group(1), m.group(2), int(m.group(3)))] = int(m.group(4))
    return counts


# ---------------------------------------------------------------------------------------------
# Seeding through the pages.


def switch_off_rate_limit(admin: Browser) -> None:
    """The admin turns the per-address rate limit and sign-in throttling off at
    /admin/security (the lockout stays on): every request of a benchmark comes from 127.0.0.1."""
    page = admin.get("/admin/security").text
    numbers = dict(re.findall(r'name="(\w+)" type="number"[^>]*value="([^"]*)"', page))
    form = {k: numbers[k] for k in (
        "lockout_failures", "lockout_window_minutes", "lockout_minutes", "throttle_burst",
        "throttle_per_minute", "delay_base_ms", "delay_max_ms", "rate_limit_burst",
        "rate_limit_per_minute")}
    form.update(lockout_enabled="true", throttle_enabled="false", delay_enabled="false",
                rate_limit_enabled="false")
    r = admin.post("/admin/security/brute-force", form, CSRF.search(page).group(1))
    if "Anti-brute-force settings saved." not in r.text:
        raise SystemExit(f"the brute-force settings were not saved:\n{r.text[:3000]}")


def profile_of(i: int) -> dict:
    return {
        "username": f"patient{i:05d}",
        "national_id": f"S{i:07d}{chr(ord('A') + i % 26)}",
        "first_name": ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Goh", "Hana"][i % 8],
        "last_name": f"Tan-{i:05d}",
        "date_of_birth": f"{1940 + i % 70}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "gender": ["female", "male", "other", "undisclosed"][i % 4],
        "blood_type": ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"][i % 8],
        "phone": f"+65 6{i % 1000:03d} {i % 10000:04d}",
        "email": f"patient{i:05d}@example.org",
        "address": f"{1 + i % 200} Orchard Road, #{i % 30:02d}-{i % 90:02d}",
        "postal_code": f"{238800 + i % 100}",
        "height_cm": f"{150 + i % 40}",
        "weight_kg": f"{50 + i % 40}.5",
        "allergies": "Penicillin; latex" if i % 3 == 0 else "",
    }


def consultation_of(i: int, k: int) -> dict:
    return {
        "occurred_at": f"{2015 + k % 10}-{1 + (i + k) % 12:02d}-{1 + (i * 7 + k) % 28:02d}T{8 + k % 9:02d}:30",
        "department": DEPARTMENTS[(i + k) % len(DEPARTMENTS)],
        "block": f"B{k % 4}",
        "unit": f"U{(i + k) % 12}",
        "diagnosis": f"Follow-up {k + 1}: essential hypertension, controlled; mild dyslipidaemia (visit {k + 1}).",
        "notes": ("Patient reports good adherence to medication, no chest pain or dyspnoea. "
                  "BP 132/84 seated, HR 72 regular. Advised diet low in salt and saturated fat, "
                  "30 minutes of brisk walking five days a week. Review lipid panel in 3 months. ") * 2,
        "prescription": "Amlodipine 5 mg once daily; atorvastatin 20 mg at night; review in 3 months.",
    }


def vaccination_of(i: int, k: int) -> dict:
    return {
        "vaccine": VACCINES[k % len(VACCINES)],
        "dose_number": "1",
        "given_on": f"{2010 + k}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "lot": f"LOT-{i:05d}-{k}",
        "given_by": "Nurse Lim",
    }


def seed_patient(doctor: Browser, token: str, i: int, consultations: int, vaccinations: int):
    """Registers patient i and records their consultations and vaccinations. Returns
    (patient id, username, one-time password)."""
    r = doctor.post("/patients/new", profile_of(i), token)
    if r.status_code != 200:
        raise RuntimeError(f"patient {i}: POST /patients/new answered {r.status_code}: {r.text[:500]}")
    pid = re.search(r'href="/patients/([^"/#?]+)"', r.text)
    otp = re.search(r"<code>([^<]+)</code>", r.text)
    if not pid or not otp:
        raise RuntimeError(f"patient {i}: no id or one-time password on the page:\n{r.text[:2000]}")
    pid = pid.group(1)
    for k in range(consultations):
        r = doctor.post(f"/patients/{pid}/consultations", consultation_of(i, k), token, follow=False)
        if r.status_code != 303 or "#consultations" not in r.headers.get("Location", ""):
            raise RuntimeError(f"patient {i}: consultation {k}: {r.status_code} {r.headers.get('Location')}: {r.text[:800]}")
    for k in range(vaccinations):
        r = doctor.post(f"/patients/{pid}/vaccinations", vaccination_of(i, k), token, follow=False)
        if r.status_code != 303 or "#vaccinations" not in r.headers.get("Location", ""):
            raise RuntimeError(f"patient {i}: vaccination {k}: {r.status_code} {r.headers.get('Location')}: {r.text[:800]}")
    return pid, profile_of(i)["username"], otp.group(1)


# ---------------------------------------------------------------------------------------------
# wrk.

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * UNITS[m.group(2)]


def run_wrk(url: str, cookie: str | None, connections: int, duration: int, threads: int) -> dict:
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s",
           "--latency", "--timeout", "10s", "-H", f"User-Agent: {USER_AGENT}"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    cmd.append(url)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if bad or (errors and any(int(x) for x in errors.groups())):
        raise SystemExit(f"wrk saw failed responses or socket errors on {url}:\n{out}")
    return {
        "rps": float(rps.group(1)),
        "p50": to_ms(p50.group(1)),
        "p99": to_ms(p99.group(1)),
        "requests": int(total.group(1)),
        "wrk_cpu": usage.ru_utime + usage.ru_stime,
        "raw": out,
    }


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # everything but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def measure(server: Server, base: str, name: str, path: str, cookie: str | None,
            connections: int, duration: int, threads: int, besides=()) -> dict:
    """One wrk run, checked against the server's own request counts (`besides`: routes, as
    (method, route, status), that something else sends meanwhile)."""
    before = metrics_counts(base)
    (user0, sys0), busy0, t0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    result = run_wrk(base + path, cookie, connections, duration, threads)
    (user1, sys1), busy1, t1 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    after = metrics_counts(base)
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    for other in (("GET", "/metrics", 200), *besides):
        delta.pop(other, None)
    not_ok = {k: v for k, v in delta.items() if k[2] != 200}
    ok = sum(v for k, v in delta.items() if k[2] == 200)
    if not_ok or ok < result["requests"]:
        raise SystemExit(
            f"{name}: the server answered something else than 200 during the run: {not_ok} "
            f"(200s: {ok}, wrk counted {result['requests']}); a 303 to /login means the cookie "
            f"or User-Agent binding is wrong")
    server_cpu = (user1 - user0) + (sys1 - sys0)
    # What the rest of the machine (other tenants, this script) used meanwhile, in cores.
    others = max(0.0, (busy1 - busy0) - server_cpu - result["wrk_cpu"]) / (t1 - t0)
    result.update(
        name=name, connections=connections, others_cores=others,
        server_cpu_ms_per_req=server_cpu * 1000 / max(ok, 1),
        server_sys_share=(sys1 - sys0) / max(server_cpu, 1e-9),
        wrk_cpu_ms_per_req=result["wrk_cpu"] * 1000 / max(result["requests"], 1),
        server_routes=sorted({k[1] for k in delta}),
    )
    log(f"  {name:<28} c={connections:<3} {result['rps']:9.1f} req/s  p50 {result['p50']:7.2f} ms  "
        f"p99 {result['p99']:7.2f} ms  server CPU {result['server_cpu_ms_per_req']:.3f} ms/req  "
        f"({100 * result['server_sys_share']:.0f} % kernel)  wrk CPU "
        f"{result['wrk_cpu_ms_per_req']:.3f} ms/req  others {others:.2f} cores")
    return result


# ---------------------------------------------------------------------------------------------
# Where the server's time goes. (1) perf with DWARF call graphs (the release build has no frame
# pointers): each sample is given to the first step of the request its stack shows, and to the
# first kind of work. (2) perf stat on syscall tracepoints: the sleeps of SQLite's busy handler
# (a connection that finds the write lock taken sleeps 1, 2, 5, 10, 15, 20, 25 ... ms and
# retries), the fsyncs of WAL checkpoints, the WAL writes and the futex hand-offs, per request.

STEPS = [
    ("session lookup (cookie, sessions row, user row)", ("medvault::auth::session",)),
    ("access check (patient row, care team)", ("medvault::web::patient_record::access",
                                               "medvault::records::relation",
                                               "medvault::records::find_patient")),
    ("audit event (HMAC chain, BEGIN IMMEDIATE .. COMMIT)", ("medvault::audit::",
                                                             "medvault::records::audit")),
    ("record read (SQL + field decryption)", ("medvault::records::load_record",
                                              "medvault::web::records::render")),
    ("template: context to values (serde, figment)", ("figment::value::ser",)),
    ("template: Tera rendering", ("tera::", "rocket_dyn_templates")),
    ("HTTP (hyper) and socket writes", ("hyper::", "hyper_util::", "tcp_", "TcpStream")),
    ("waiting and waking threads (futex, scheduler)", ("futex", "__schedule",
                                                        "finish_task_switch")),
]
KINDS = [
    ("SQLite: preparing statements", ("sqlite3Prepare", "sqlite3Reprepare", "sqlite3RunParser")),
    ("SQLite: file writes and syncs", ("unixWrite", "unixSync", "pwrite", "fsync", "fdatasync")),
    ("SQLite: everything else", ("sqlite3", "diesel::")),
    ("AES-GCM and HMAC/SHA-256", ("aes", "Aes", "ghash", "polyval", "sha2::", "hmac::", "Hmac")),
    ("Tera (template engine)", ("tera::",)),
    ("serde to figment/Tera values", ("figment::value::ser", "serialize")),
    ("malloc/free elsewhere", ("malloc", "_int_free", "cfree", "realloc", "malloc_consolidate",
                               "unlink_chunk")),
]
SYSCALLS = ["clock_nanosleep", "nanosleep", "fsync", "fdatasync", "pwrite64", "futex"]


def classify(stack: list, rules) -> str:
    for label, needles in rules:
        if any(n in frame for frame in stack for n in needles):
            return label
    return "other (Rocket, tokio, allocator; or a stack perf could not unwind)"


def perf_samples(text: str):
    stack = []
    for line in text.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            stack.append(parts[1] if len(parts) > 1 else "?")
    if stack:
        yield stack


def measure_during_backups(server: Server, base: str, admin: Browser, home: str, target,
                           conns: list, args) -> list:
    """The doctor's page at rest and while the admin makes backups one after another through
    /admin/backups, alternating run by run so that both see the same machine. Each backup is
    removed from disk once made (the listing reads the folder), so the disk does not fill."""
    name, path, cookie = target
    backups_dir = os.path.join(home, "database", "backups")
    rows = []
    for c in conns:
        rest, busy, made, seconds, made_bytes = [], [], 0, 0.0, 0
        for run in range(1, args.runs + 1):
            log(f"at rest / during backups, c={c}, run {run}/{args.runs}")
            rest.append(measure(server, base, name + " (at rest)", path, cookie, c,
                                args.duration, args.threads))
            stop = threading.Event()
            stats = {"made": 0, "seconds": 0.0, "bytes": 0, "error": None}

            def backups():
                try:
                    make_backups()
                except requests.RequestException as e:
                    stats["error"] = str(e)

            def make_backups():
                token = admin.csrf("/admin/backups")
                while not stop.is_set():
                    started = time.monotonic()
                    r = admin.post("/admin/backups", {}, token, follow=False)
                    flash = requests.utils.unquote(r.cookies.get("_flash", ""))
                    found = re.search(r"Backup (medvault-[\w.-]+\.sqlite) made", flash)
                    if r.status_code != 303 or not found:
                        stats["error"] = f"{r.status_code} {flash or r.text[:300]}"
                        return
                    stats["seconds"] += time.monotonic() - started
                    stats["made"] += 1
                    file = os.path.join(backups_dir, found.group(1))
                    stats["bytes"] += os.path.getsize(file)
                    for leftover in (file, file + ".json"):  # the backup and its manifest
                        if os.path.exists(leftover):
                            os.remove(leftover)

            worker = threading.Thread(target=backups, daemon=True)
            worker.start()
            busy.append(measure(server, base, name + " (backups)", path, cookie, c,
                                args.duration, args.threads,
                                besides=[("GET", "/admin/backups", 200),
                                         ("POST", "/admin/backups", 303)]))
            stop.set()
            worker.join(timeout=120)
            if stats["error"]:
                raise SystemExit(f"a backup failed during the run: {stats['error']}")
            made += stats["made"]
            seconds += stats["seconds"]
            made_bytes += stats["bytes"]
            log(f"    {stats['made']} backups during the run")
        rest_p99 = statistics.median(r["p99"] for r in rest)
        busy_p99 = statistics.median(r["p99"] for r in busy)
        rows.append({
            "connections": c, "rest_p99": rest_p99, "backup_p99": busy_p99,
            "ratio": busy_p99 / rest_p99,
            "rest_rps": statistics.median(r["rps"] for r in rest),
            "backup_rps": statistics.median(r["rps"] for r in busy),
            "backups": made, "mb_per_s": made_bytes / 1e6 / max(seconds, 1e-9),
        })
    return rows


def profile(server: Server, base: str, pages: list, connections: int, duration: int,
            threads: int, home: str, keep: bool) -> None:
    if not shutil.which("perf"):
        raise SystemExit("perf is missing")
    data = os.path.join(home, "perf.data")
    name, path, cookie = pages[0]
    log(f"perf record: one more run of {name} (not a measurement: perf costs CPU)")
    rec = subprocess.Popen(["perf", "record", "-F", "199", "--call-graph", "dwarf,16384", "-o",
                            data, "-p", str(server.proc.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    measure(server, base, name + " (perf)", path, cookie, connections, duration, threads)
    rec.send_signal(signal.SIGINT)  # perf's own PID: it writes its file and exits
    rec.wait(timeout=120)
    text = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], capture_output=True,
                          text=True, errors="replace").stdout
    steps, kinds, both, total = {}, {}, {}, 0
    for stack in perf_samples(text):
        total += 1
        s, k = classify(stack, STEPS), classify(stack, KINDS)
        steps[s] = steps.get(s, 0) + 1
        kinds[k] = kinds.get(k, 0) + 1
        both[(s, k)] = both.get((s, k), 0) + 1
    if not total:
        log("perf recorded no samples")
        return
    log(f"server CPU by step of the request ({total} samples):")
    for label, n in sorted(steps.items(), key=lambda kv: -kv[1]):
        log(f"  {100 * n / total:5.1f} %  {label}")
    log("server CPU by kind of work:")
    for label, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        log(f"  {100 * n / total:5.1f} %  {label}")
    log("SQLite statement preparation by step:")
    for (s, k), n in sorted(both.items(), key=lambda kv: -kv[1]):
        if k == "SQLite: preparing statements":
            log(f"  {100 * n / total:5.1f} %  {s}")
    if keep:
        log(f"perf data kept at {data}")
    else:
        os.remove(data)

    events = ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS)
    for name, path, cookie in pages:
        out = os.path.join(home, "perf-stat.txt")
        stat = subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e", events, "-p",
                                 str(server.proc.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        r = measure(server, base, name + " (syscalls)", path, cookie, connections, duration,
                    threads)
        stat.send_signal(signal.SIGINT)
        stat.wait(timeout=60)
        counts = {}
        for line in open(out):
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_"):
                counts[fields[2].removeprefix("syscalls:sys_enter_")] = float(fields[0] or 0)
        # The requests of the run plus the second before and after it that perf also saw.
        n = max(r["requests"], 1)
        log(f"  syscalls per 1,000 requests of {name}: " + ", ".join(
            f"{c} {1000 * counts.get(c, 0) / n:.1f}" for c in SYSCALLS))


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "target/release/medvault"))
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--consultations", type=int, default=10)
    ap.add_argument("--vaccinations", type=int, default=5)
    ap.add_argument("--seed-threads", type=int, default=4)
    ap.add_argument("--connections", default="16",
                    help="wrk connection counts, comma-separated (default 16)")
    ap.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    ap.add_argument("--runs", type=int, default=3, help="wrk runs per page and connection count")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load per page first")
    ap.add_argument("--compare", action="store_true",
                    help="also load pages that do less work (style sheet, /health, /dashboard, "
                         "/account/sessions, a consultation's edit page, an empty record)")
    ap.add_argument("--during-backups", action="store_true",
                    help="then measure the doctor's page at rest and while an admin makes backups "
                         "back to back (POST /admin/backups), alternating, --runs times each")
    ap.add_argument("--perf", action="store_true",
                    help="profile the server with perf during one extra run of the doctor's page")
    ap.add_argument("--log", default=None,
                    help="MEDVAULT_LOG for the server (default info: four lines per request; "
                         "warn: none)")
    ap.add_argument("--template-dir", default=None,
                    help="MEDVAULT_TEMPLATE_DIR: templates matching the binary (default: the "
                         "source tree's, read at run time)")
    ap.add_argument("--no-restart", action="store_true",
                    help="measure with the process that did the seeding (its peak RSS then "
                         "includes the seeding's)")
    ap.add_argument("--keep-home", action="store_true", help="leave the temporary home in place")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    # A SIGTERM (or Ctrl-C) still runs the finally block that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no binary at {binary}: cargo build --release --bin medvault")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    home = tempfile.mkdtemp(prefix="medvault-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = Server(binary, home, port, args.log, args.template_dir)
    log(f"binary {binary}\nhome {home}\nserver {base}")
    try:
        server.cli_user("admin", "bench.admin", ADMIN_PASSWORD)
        server.cli_user("doctor", "bench.doctor", DOCTOR_PASSWORD)
        server.start()
        log(f"server pid {server.proc.pid}, RSS at start {server.rss_kib() / 1024:.1f} MiB")

        # The admin switches off the per-address rate limit (and sign-in throttling): every
        # request of the benchmark comes from 127.0.0.1.
        admin = Browser(base)
        admin.sign_in("bench.admin", ADMIN_PASSWORD)
        switch_off_rate_limit(admin)
        log("rate limit and sign-in throttling off")

        # Seeding: the doctor registers every patient and records their history.
        doctor = Browser(base)
        doctor.sign_in("bench.doctor", DOCTOR_PASSWORD)
        token = doctor.csrf("/patients/new")
        local = threading.local()

        def seed(i: int):
            if not hasattr(local, "browser"):
                local.browser = doctor.clone()
            return seed_patient(local.browser, token, i, args.consultations, args.vaccinations)

        started = time.monotonic()
        seeded = []
        with ThreadPoolExecutor(args.seed_threads) as pool:
            for n, item in enumerate(pool.map(seed, range(args.patients)), 1):
                seeded.append(item)
                if n % 100 == 0 or n == args.patients:
                    log(f"  seeded {n}/{args.patients} patients, {time.monotonic() - started:.0f} s")
        seed_seconds = time.monotonic() - started
        posts = args.patients * (1 + args.consultations + args.vaccinations)
        log(f"seeding: {args.patients} patients, {posts} form posts in {seed_seconds:.1f} s "
            f"({posts / seed_seconds:.0f} posts/s) with {args.seed_threads} threads")
        db_file = os.path.join(home, "database", "medvault.sqlite")
        db_mib = sum(os.path.getsize(p) for p in (db_file, db_file + "-wal")
                     if os.path.exists(p)) / 2**20
        rss_after_seed = server.rss_kib() / 1024
        hwm_after_seed = server.rss_kib("VmHWM") / 1024
        log(f"database {db_mib:.1f} MiB (with WAL), server RSS {rss_after_seed:.1f} MiB "
            f"(peak so far {hwm_after_seed:.1f} MiB)")

        if not args.no_restart:
            # A fresh process for the measurements: its VmHWM is then the peak while serving
            # pages, not the one seeding left (every registration hashes a one-time password with
            # Argon2id, 19 MiB, on several threads at once). The settings stay in the database.
            server.stop()
            server.start()
            log(f"server restarted for the measurements: pid {server.proc.pid}, RSS "
                f"{server.rss_kib() / 1024:.1f} MiB")

        # The patient whose record is loaded: one in the middle of the list.
        pid, username, one_time = seeded[len(seeded) // 2]

        # The doctor's session for wrk: a fresh sign-in, checked once by hand.
        bench_doctor = Browser(base)
        bench_doctor.sign_in("bench.doctor", DOCTOR_PASSWORD)
        r = bench_doctor.get(f"/patients/{pid}", allow_redirects=False)
        if r.status_code != 200 or username not in r.text:
            raise SystemExit(f"GET /patients/{pid}: {r.status_code} {r.headers.get('Location')}")
        doctor_page_kib = len(r.content) / 1024
        consultation_ids = re.findall(rf'href="/patients/{pid}/consultations/([^"/#?]+)"', r.text)
        # The patient: one-time password, forced change, then a sign-in with their own.
        patient = Browser(base)
        patient.sign_in(username, one_time)
        token_p = patient.csrf("/account/password")
        r = patient.post("/account/password",
                         {"current_password": one_time, "new_password": PATIENT_PASSWORD}, token_p)
        if "password is changed" not in r.text:
            raise SystemExit(f"the patient's password change failed:\n{r.text[:2000]}")
        patient = Browser(base)
        patient.sign_in(username, PATIENT_PASSWORD)
        r = patient.get("/records", allow_redirects=False)
        if r.status_code != 200 or "Tan-" not in r.text:
            raise SystemExit(f"GET /records: {r.status_code} {r.headers.get('Location')}")
        records_page_kib = len(r.content) / 1024
        log(f"doctor's page {doctor_page_kib:.1f} KiB, patient's page {records_page_kib:.1f} KiB")

        targets = [
            ("doctor GET /patients/<id>", f"/patients/{pid}", bench_doctor.cookie_header()),
            ("patient GET /records", "/records", patient.cookie_header()),
        ]
        extra = []
        if args.compare:
            # A patient with a profile only: the same page with no entries to open and render.
            empty_pid, _, _ = seed_patient(doctor.clone(), token, args.patients, 0, 0)
            extra = [
                ("static /static/medvault.css", "/static/medvault.css", None),
                ("GET /health", "/health", None),
                ("doctor GET /dashboard", "/dashboard", bench_doctor.cookie_header()),
                ("doctor GET /account/sessions", "/account/sessions", bench_doctor.cookie_header()),
                ("doctor consultation edit", f"/patients/{pid}/consultations/{consultation_ids[0]}",
                 bench_doctor.cookie_header()),
                ("doctor empty record", f"/patients/{empty_pid}", bench_doctor.cookie_header()),
            ]

        peak = {"rss": 0}
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.wait(0.25):
                try:
                    peak["rss"] = max(peak["rss"], server.rss_kib())
                except (OSError, KeyError):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        if args.warmup:
            for name, path, cookie in targets + extra:
                run_wrk(base + path, cookie, conns[0], args.warmup, args.threads)
        results = []
        for run in range(1, args.runs + 1):
            log(f"run {run}/{args.runs}")
            for c in conns:
                for name, path, cookie in targets:
                    results.append(measure(server, base, name, path, cookie, c, args.duration, args.threads))
            for name, path, cookie in extra:
                results.append(measure(server, base, name, path, cookie, conns[0], args.duration, args.threads))

        backup_rows = []
        if args.during_backups:
            backup_rows = measure_during_backups(server, base, admin, home, targets[0], conns,
                                                 args)

        if args.perf:
            pages = [targets[0]] + [e for e in extra if e[0] in (
                "doctor consultation edit", "doctor GET /account/sessions")]
            profile(server, base, pages, conns[0], args.duration, args.threads, home,
                    args.keep_home)

        stop_sampling.set()
        sampler.join(timeout=2)
        vm = server.status()
        hwm = int(vm["VmHWM"].split()[0]) / 1024

        # The table.
        log("\nmedians over runs: requests/s, p50 and p99 in ms, server CPU per request in ms (and "
            "its kernel share), wrk CPU per request in ms, cores used by everything else")
        log(f"{'page':<30} {'conns':>5} {'req/s':>9} {'p50':>8} {'p99':>8} {'srv CPU':>8} "
            f"{'kernel':>6} {'wrk CPU':>8} {'others':>6}  req/s of each run")
        groups = {}
        for r in results:
            groups.setdefault((r["name"], r["connections"]), []).append(r)
        summary = {}
        for (name, c), rs in groups.items():
            med = {k: statistics.median(x[k] for x in rs)
                   for k in ("rps", "p50", "p99", "server_cpu_ms_per_req", "wrk_cpu_ms_per_req",
                             "server_sys_share", "others_cores")}
            summary[(name, c)] = med
            runs = " / ".join(f"{x['rps']:.0f}" for x in rs)
            log(f"{name:<30} {c:>5} {med['rps']:>9.1f} {med['p50']:>8.2f} {med['p99']:>8.2f} "
                f"{med['server_cpu_ms_per_req']:>8.3f} {100 * med['server_sys_share']:>5.0f}% "
                f"{med['wrk_cpu_ms_per_req']:>8.3f} {med['others_cores']:>6.2f}  {runs}")
        log(f"\nserver peak RSS (VmHWM) {hwm:.1f} MiB"
            + ("" if args.no_restart else " while serving (fresh process after seeding)")
            + f"; highest RSS sampled under wrk {peak['rss'] / 1024:.1f} MiB; the seeding "
            f"process: peak {hwm_after_seed:.1f} MiB, {rss_after_seed:.1f} MiB at its end")
        log(f"seeding {args.patients} patients ({args.consultations} consultations, "
            f"{args.vaccinations} vaccinations each): {seed_seconds:.1f} s")
        if backup_rows:
            log("\nthe doctor's page at rest and while backups run back to back (medians of "
                f"{args.runs} alternating runs each):")
            log(f"{'conns':>5} {'p99 at rest':>12} {'p99 backups':>12} {'ratio':>6} "
                f"{'req/s at rest':>14} {'req/s backups':>14} {'backups':>8} {'MB/s':>6}")
            for row in backup_rows:
                log(f"{row['connections']:>5} {row['rest_p99']:>12.2f} {row['backup_p99']:>12.2f} "
                    f"{row['ratio']:>6.2f} {row['rest_rps']:>14.1f} {row['backup_rps']:>14.1f} "
                    f"{row['backups']:>8} {row['mb_per_s']:>6.0f}")
            log("target (p99 during a backup no worse than twice the p99 at rest): "
                + ("met" if all(r["ratio"] <= 2 for r in backup_rows) else "NOT met"))
        doctor = {c: v for (n, c), v in summary.items() if n == targets[0][0]}
        met = [c for c, v in doctor.items() if v["rps"] >= 2000 and v["p99"] < 50]
        within = [c for c, v in doctor.items() if v["p99"] < 50] or list(doctor)
        c = max(within, key=lambda c: doctor[c]["rps"])
        log(f"target (doctor's page >= 2,000 req/s with p99 < 50 ms): "
            + (f"met at c={met}" if met else
               f"NOT met; best median with p99 under 50 ms: {doctor[c]['rps']:.0f} req/s at "
               f"c={c} (p99 {doctor[c]['p99']:.1f} ms)"))
        return 0
    except BaseException:
        if os.path.exists(server.log_path):
            tail = open(server.log_path, errors="replace").read()[-4000:]
            log(f"--- end of the server's log ({server.log_path}) ---\n{tail}")
        raise
    finally:
        server.stop()
        if args.keep_home:
            log(f"home kept at {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
