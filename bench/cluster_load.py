#!/usr/bin/env python3
"""Several medvault servers on one PostgreSQL database behind haproxy, loaded and then cut.

Starts a PostgreSQL 15 cluster of its own on a loopback port (.ci/postgres), N medvault servers
on loopback ports sharing one database and one root key, and haproxy in front (health checks on
/health, X-Forwarded-For for the servers' trusted_proxies, no stickiness), the same settings as
deploy/haproxy.cfg without TLS. Seeds patients through haproxy (the pages' own code path), signs
a doctor and a patient in, then:

1. Speed: the doctor's patient page (GET /patients/<id>) under wrk at each connection count, on
   one server directly (over TCP, then over PostgreSQL's Unix socket), and through haproxy with
   2 and then N servers (the others stopped from haproxy's view by their health checks, since
   each is started only when its turn comes). With
   --sqlite, the same page first on one server on the embedded SQLite database, seeded the same
   way, for a side-by-side in one run. Plots requests/s and p99 against connections (matplotlib,
   SVG) when --plot names a file.
2. kill -9: with all N servers up and a re-encryption job running (an admin changed the policy;
   reencryption_pause_ms, 500, keeps it going), wrk loads the doctor's page through haproxy while a
   writer posts consultations through haproxy; midway, the server holding the job's lease is
   killed with SIGKILL. Then it checks: the same session cookie worked before and after on the
   others (wrk's errors are counted and bounded by the requests in flight), every consultation
   answered with success is on the record afterwards, and the lease moved to another server.

Usage (from the repository root, as root: the cluster runs as the postgres user):

    cargo build --release --bin medvault
    python3 bench/cluster_load.py [target/release/medvault] [--instances 3] [--patients 200] \
        [--connections 8,16,32] [--duration 15] [--runs 3] [--sqlite] [--plot bench/out.svg]

Needs wrk, haproxy and PostgreSQL 15 (apt-get install -y wrk haproxy postgresql), and Python's
requests (and matplotlib for --plot).
"""

import argparse
import base64
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import records_load as rl  # noqa: E402  (the single-server benchmark: browser, seeding, wrk)

REPO = rl.REPO
LEASE_SECONDS = 5


def log(*parts):
    print(*parts, flush=True)


def pg_tool(name: str) -> str:
    found = sorted(
        (p for p in (os.path.join("/usr/lib/postgresql", v, "bin", name)
                     for v in os.listdir("/usr/lib/postgresql")) if os.path.exists(p)),
        key=lambda p: int(p.split("/")[4]),
    ) if os.path.isdir("/usr/lib/postgresql") else []
    return found[-1] if found else name


class Postgres:
    """A cluster of the benchmark's own, through .ci/postgres (as the postgres user)."""

    def __init__(self, directory: str):
        self.dir = directory
        self.port = rl.free_port()
        out = subprocess.run([os.path.join(REPO, ".ci/postgres"), "start", directory,
                              str(self.port)], check=True, capture_output=True, text=True)
        self.url = out.stdout.strip().splitlines()[-1]

    def create_database(self, name: str) -> str:
        subprocess.run([pg_tool("psql"), self.url, "-q", "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def socket_url(self, name: str) -> str:
        """The URL of database `name` through the cluster's Unix socket (in its directory)."""
        credentials = self.url.split("//", 1)[1].split("@", 1)[0]
        return f"postgres://{credentials}@/{name}?host={self.dir}&port={self.port}"

    def stop(self):
        subprocess.run([os.path.join(REPO, ".ci/postgres"), "stop", self.dir],
                       capture_output=True)


def sql(url: str, query: str) -> str:
    out = subprocess.run([pg_tool("psql"), url, "-At", "-c", query], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


class Haproxy:
    def __init__(self, home: str, backends: list):
        self.port = rl.free_port()
        self.cfg = os.path.join(home, "haproxy.cfg")
        servers = "\n".join(f"    server medvault{i + 1} 127.0.0.1:{port} check"
                            for i, port in enumerate(backends))
        with open(self.cfg, "w") as f:
            f.write(f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 1
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend records
    bind 127.0.0.1:{self.port}
    http-request del-header X-Forwarded-For
    option forwardfor
    default_backend medvault
backend medvault
    balance leastconn
    http-request disable-l7-retry unless METH_GET || METH_HEAD
    option httpchk GET /health
    http-check send hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
""")
        subprocess.run(["haproxy", "-c", "-q", "-f", self.cfg], check=True)
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for(self, up: int, base: str):
        """Until /health through haproxy answers (at least one server up). `up` is only logged."""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(base + "/health", timeout=2).status_code == 200:
                    time.sleep(1.5)  # the health checks of the others (inter 500ms, rise 2)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit(f"haproxy found no healthy server ({up} expected)")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def server_env(server: rl.Server, url: str, key: str):
    server.env.update(
        MEDVAULT_DATABASE_URL=url,
        MEDVAULT_MASTER_KEY=key,
        MEDVAULT_TRUSTED_PROXIES='["127.0.0.1"]',
        MEDVAULT_HOSTS='["127.0.0.1"]',
        MEDVAULT_JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        MEDVAULT_REENCRYPTION_PAUSE_MS="500",
        MEDVAULT_LOG="warn",
    )


def seed(base: str, patients: int, consultations: int, vaccinations: int):
    """An admin switches the rate limit off; a doctor registers the patients. Returns the doctor's
    browser and the seeded (id, username, one-time password) list."""
    admin = rl.Browser(base)
    admin.sign_in("bench.admin", rl.ADMIN_PASSWORD)
    rl.switch_off_rate_limit(admin)
    doctor = rl.Browser(base)
    doctor.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
    token = doctor.csrf("/patients/new")
    started = time.monotonic()
    seeded = [rl.seed_patient(doctor, token, i, consultations, vaccinations)
              for i in range(patients)]
    log(f"  seeded {patients} patients in {time.monotonic() - started:.1f} s")
    return admin, doctor, seeded


def measure_page(base: str, path: str, cookie: str, conns: list, duration: int, runs: int,
                 threads: int, label: str) -> dict:
    """Medians of `runs` wrk runs per connection count: {connections: (req/s, p99)}."""
    rl.run_wrk(base + path, cookie, conns[0], 3, threads)  # warm-up
    results = {c: [] for c in conns}
    for _ in range(runs):
        for c in conns:
            r = rl.run_wrk(base + path, cookie, c, duration, threads)
            results[c].append(r)
            log(f"  {label:<28} c={c:<3} {r['rps']:9.1f} req/s  p50 {r['p50']:7.2f} ms  "
                f"p99 {r['p99']:7.2f} ms")
    return {c: (statistics.median(r["rps"] for r in rs), statistics.median(r["p99"] for r in rs))
            for c, rs in results.items()}


def run_wrk_lenient(url: str, cookie: str, connections: int, duration: int, threads: int) -> dict:
    """wrk that reports failures instead of stopping on them (the kill -9 run)."""
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}s",
           "--latency", "--timeout", "10s", "-H", f"User-Agent: {rl.USER_AGENT}",
           "-H", f"Cookie: {cookie}", url]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "raw": out,
    }


def change_policy(admin: rl.Browser):
    """The admin moves every encrypted column to XChaCha20-Poly1305: a job over every value."""
    page = admin.get("/admin/encryption").text
    token = rl.CSRF.search(page).group(1)
    form = []
    for table in sorted(set(re.findall(r'name="cipher\[(\w+)\]"', page))):
        form += [(f"cipher[{table}]", "xchacha20-poly1305"), (f"hash[{table}]", "sha-512")]
    form += [("encrypt", v) for v in re.findall(r'name="encrypt" value="([^"]+)"[^>]*checked', page)]
    form += [("id_length", "16"), ("blind_index_bits", "64"), ("csrf_token", token)]
    r = admin.http.post(admin.base + "/admin/encryption", data=form,
                        headers={"Origin": admin.base}, timeout=60)
    if r.status_code != 200 or "running since" not in admin.get("/admin/encryption").text:
        raise SystemExit(f"the policy change did not start a job: {r.status_code}\n{r.text[:2000]}")


def lease_holder(db_url: str) -> str:
    return sql(db_url, "SELECT holder FROM job_leases WHERE name = 'reencryption' "
                       "AND expires_at_ms > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 "
                       "AS BIGINT)")


def kill_run(base: str, db_url: str, servers: list, pid: str, cookie: str, admin: rl.Browser,
             doctor: rl.Browser, duration: int, threads: int) -> dict:
    """wrk on the doctor's page and a writer of consultations, both through haproxy; a third
    of the way in, the admin starts a re-encryption job, and the server that takes its lease is
    killed with SIGKILL as soon as it has."""
    saved, failed, stop = [], [], threading.Event()
    writer = doctor.clone()
    token = writer.csrf(f"/patients/{pid}")

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            marker = f"kill-run-{n:05d}"
            form = rl.consultation_of(n, n)
            form["diagnosis"] = f"{marker}: follow-up"
            try:
                r = writer.post(f"/patients/{pid}/consultations", form, token, follow=False)
                (saved if r.status_code == 303 else failed).append((marker, r.status_code))
            except requests.RequestException as e:
                failed.append((marker, str(e)[:60]))
            time.sleep(0.05)

    writing = threading.Thread(target=write)
    writing.start()
    result = {}
    loading = threading.Thread(target=lambda: result.update(run_wrk_lenient(
        base + f"/patients/{pid}", cookie, 16, duration, threads)))
    loading.start()
    time.sleep(duration / 3)
    change_policy(admin)
    holder = ""
    deadline = time.time() + 20
    while time.time() < deadline and not holder:
        holder = lease_holder(db_url)
        time.sleep(0.05)
    if not holder:
        raise SystemExit("no server took the re-encryption job's lease")
    victim = next(s for s in servers if f":{s.proc.pid}:" in holder)
    killed_at = time.monotonic()
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait()
    log(f"  the job's lease was held by {holder} (port {victim.port}): kill -9 "
        f"{victim.proc.pid}")
    moved = None
    while time.monotonic() - killed_at < LEASE_SECONDS + 20:
        now = lease_holder(db_url)
        if now and now != holder:
            moved = (now, time.monotonic() - killed_at)
            break
        time.sleep(0.1)
    loading.join()
    stop.set()
    writing.join()
    done = None
    deadline = time.time() + 120
    while time.time() < deadline and done is None:
        if sql(db_url, "SELECT count(*) FROM reencryption_jobs WHERE state = 'running'") == "0":
            done = sql(db_url, "SELECT rewritten || ' rewritten, ' || unreadable || ' unreadable' "
                               "FROM reencryption_jobs ORDER BY id DESC LIMIT 1")
        time.sleep(0.5)
    # Every consultation answered with success is on the record, read through the others.
    page = doctor.get(f"/patients/{pid}").text
    missing = [m for m, _ in saved if m not in page]
    after = doctor.get(f"/patients/{pid}", allow_redirects=False).status_code
    return dict(result, saved=len(saved), failed=failed, missing=missing, moved=moved,
                holder=holder, same_cookie_after=after, job=done)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", default=os.path.join(REPO, "target/release/medvault"))
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--consultations", type=int, default=10)
    ap.add_argument("--vaccinations", type=int, default=5)
    ap.add_argument("--connections", default="8,16,32")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sqlite", action="store_true",
                    help="also measure one server on the embedded SQLite database")
    ap.add_argument("--plot", default=None, help="write an SVG of the results here")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill -9 run")
    args = ap.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binary = os.path.abspath(args.binary)
    for tool in ("wrk", "haproxy"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y {tool}")

    work = tempfile.mkdtemp(prefix="medvault-cluster-")
    os.chmod(work, 0o755)
    started = []
    pg = haproxy = None
    series = {}
    try:
        if args.sqlite:
            home = os.path.join(work, "sqlite")
            os.makedirs(home)
            server = rl.Server(binary, home, rl.free_port(), "warn", None)
            server.cli_user("admin", "bench.admin", rl.ADMIN_PASSWORD)
            server.cli_user("doctor", "bench.doctor", rl.DOCTOR_PASSWORD)
            server.start()
            started.append(server)
            base = f"http://127.0.0.1:{server.port}"
            log("SQLite, one server")
            _, doctor, seeded = seed(base, args.patients, args.consultations, args.vaccinations)
            page_doctor = rl.Browser(base)
            page_doctor.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
            series["SQLite, 1 server"] = measure_page(
                base, f"/patients/{seeded[len(seeded) // 2][0]}", page_doctor.cookie_header(),
                conns, args.duration, args.runs, args.threads, "SQLite 1 server")
            server.stop()
            started.remove(server)

        pg_dir = os.path.join(work, "pg")
        pg = Postgres(pg_dir)
        db_url = pg.create_database("medvault_bench")
        key = base64.b64encode(os.urandom(32)).decode()
        ports = [rl.free_port() for _ in range(args.instances)]
        servers = []
        for i, port in enumerate(ports):
            home = os.path.join(work, f"server{i + 1}")
            os.makedirs(home)
            s = rl.Server(binary, home, port, "warn", None)
            server_env(s, db_url, key)
            servers.append(s)
        servers[0].cli_user("admin", "bench.admin", rl.ADMIN_PASSWORD)
        servers[0].cli_user("doctor", "bench.doctor", rl.DOCTOR_PASSWORD)
        servers[0].start()
        started.append(servers[0])
        direct = f"http://127.0.0.1:{servers[0].port}"
        log(f"PostgreSQL at {db_url.rsplit('@', 1)[-1]}; servers on ports {ports}")
        # The first server alone, directly: the single-instance figure.
        admin, doctor, seeded = seed(direct, args.patients, args.consultations,
                                     args.vaccinations)
        pid = seeded[len(seeded) // 2][0]
        page_doctor = rl.Browser(direct)
        page_doctor.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
        series["PostgreSQL, 1 server"] = measure_page(
            direct, f"/patients/{pid}", page_doctor.cookie_header(), conns, args.duration,
            args.runs, args.threads, "PostgreSQL 1 server")

        # The same server on PostgreSQL's Unix socket, as when both run on one machine: no TCP
        # stack between them.
        servers[0].stop()
        servers[0].env["MEDVAULT_DATABASE_URL"] = pg.socket_url("medvault_bench")
        servers[0].start()
        series["PostgreSQL, 1 server, Unix socket"] = measure_page(
            direct, f"/patients/{pid}", page_doctor.cookie_header(), conns, args.duration,
            args.runs, args.threads, "PostgreSQL 1 server socket")
        servers[0].env["MEDVAULT_DATABASE_URL"] = db_url

        # haproxy in front, over TCP (as to a database on another machine); servers join one
        # by one.
        haproxy = Haproxy(work, ports)
        base = f"http://127.0.0.1:{haproxy.port}"
        # haproxy chose its own port; the servers' allowed origin must name it.
        for s in servers:
            s.env["MEDVAULT_ALLOWED_ORIGINS"] = f'["http://127.0.0.1:{haproxy.port}"]'
        servers[0].stop()
        servers[0].start()
        for count in range(2, args.instances + 1):
            for s in servers[:count]:
                if s not in started:
                    s.start()
                    started.append(s)
            haproxy.wait_for(count, base)
            through = rl.Browser(base)
            through.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
            series[f"PostgreSQL, {count} servers, haproxy"] = measure_page(
                base, f"/patients/{pid}", through.cookie_header(), conns, args.duration,
                args.runs, args.threads, f"haproxy {count} servers")

        log("\nmedians: requests/s and p99 (ms) of the doctor's GET /patients/<id>")
        log(f"{'setup':<36}" + "".join(f"{'c=' + str(c):>20}" for c in conns))
        for name, row in series.items():
            log(f"{name:<36}" + "".join(f"{row[c][0]:>11.0f} {row[c][1]:>7.1f} ms" for c in conns))

        if args.plot:
            plot(series, conns, args.plot)
            log(f"plot written to {args.plot}")

        if not args.no_kill:
            log(f"\nkill -9 of one of {args.instances} servers under load")
            through = rl.Browser(base)
            through.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
            admin = rl.Browser(base)
            admin.sign_in("bench.admin", rl.ADMIN_PASSWORD)
            writer = rl.Browser(base)
            writer.sign_in("bench.doctor", rl.DOCTOR_PASSWORD)
            k = kill_run(base, db_url, servers, pid, through.cookie_header(), admin, writer,
                         max(args.duration * 2, 20), args.threads)
            log(f"  wrk: {k['requests']} requests, {k['rps']:.0f} req/s, non-2xx {k['non_2xx']}, "
                f"socket errors {k['socket_errors']}")
            log(f"  the same cookie after the kill: {k['same_cookie_after']}")
            log(f"  writes answered with success: {k['saved']}, missing afterwards: "
                f"{len(k['missing'])}; writes refused or cut: {k['failed']}")
            log(f"  lease: {k['holder']} -> {k['moved'][0] if k['moved'] else 'NOT moved'}"
                + (f" after {k['moved'][1]:.1f} s (lease {LEASE_SECONDS} s)" if k["moved"] else ""))
            log(f"  the job: {k['job'] or 'NOT finished'}")
            if k["missing"] or not k["moved"] or k["same_cookie_after"] != 200 or not k["job"]:
                log("  FAILED: see above")
                return 1
        return 0
    finally:
        if haproxy:
            haproxy.stop()
        for s in started:
            if s.proc and s.proc.poll() is None:
                s.stop()
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def plot(series: dict, conns: list, path: str):
    import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, row in series.items():
        left.plot(conns, [row[c][0] for c in conns], marker="o", label=name)
        right.plot(conns, [row[c][1] for c in conns], marker="o", label=name)
    left.set(title="doctor's patient page: requests/s", xlabel="connections",
             ylabel="requests/s (median)", xticks=conns)
    right.set(title="p99 latency", xlabel="connections", ylabel="ms (median of p99)",
              xticks=conns)
    right.axhline(50, color="grey", linestyle=":", linewidth=1)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})


if __name__ == "__main__":
    sys.exit(main())
