"""The README's shell blocks, run as a reader would run them, in a scratch directory: each command
must succeed and print what the `# ` lines after it promise (`...` stands for anything). A block
runs in a bash of its own; `cmd &` starts a background job, waited for until its promised lines
appear. `cargo install --path .` runs as written, plus `--debug --root` into the scratch directory
and the build directory of the suite (a release build would take minutes), and what it installs is
what the rest runs. A block preceded by `<!-- not run: reason -->` is skipped; only the set-up
commands and commands that need a Stripe account may be."""

import os
import re
import subprocess
import time

from conftest import ROOT

README = ROOT / "README.md"
# Reads may be retried while the ledger catches up: a reader types slower than this test.
RETRY_FOR = 15


def shell_blocks():
    """[(line number, skip reason or None, [lines])] of the README's ```sh blocks."""
    lines = README.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            skip = None
            before = [line for line in lines[:i] if line.strip()]
            if before and (m := re.match(r"<!-- not run: (.+) -->", before[-1].strip())):
                skip = m.group(1)
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append((start + 1, skip, body))
        i += 1
    return blocks


def commands(body):
    """[(command, [promised lines])]: continuation lines joined, `# ` lines after a command."""
    out = []
    pending = ""
    for line in body:
        if line.startswith("#") and not pending:
            if out:
                out[-1][1].append(line[1:].strip())
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append((pending.strip(), []))
            pending = ""
    return out


def pattern(promise):
    return re.compile(re.escape(promise).replace(re.escape("..."), ".*"))


def unkept(promises, text):
    """The first promised line `text` does not show, in order, or None."""
    lines = [line.strip() for line in text.splitlines()]
    at = 0
    for promise in promises:
        if promise == "...":
            continue
        wanted = pattern(promise)
        while at < len(lines) and not wanted.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return promise
        at += 1
    return None


def is_read(command):
    return (command.startswith("curl") and " -X " not in command and " -d " not in command) \
        or command.startswith("payhook events list")


class Shell:
    """A bash of its own, fed one command at a time."""

    def __init__(self, cwd, env):
        self.cwd = cwd
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.jobs = 0

    def run(self, command):
        self.proc.stdin.write(f"{command}\n__rc=$?; echo; echo __rc=$__rc\n")
        self.proc.stdin.flush()
        output = []
        for line in self.proc.stdout:
            if line.startswith("__rc="):
                return int(line.strip().split("=")[1]), "".join(output)
            output.append(line)
        raise AssertionError(f"the shell ended during {command!r}: {''.join(output)}")

    def start(self, command):
        self.jobs += 1
        log = self.cwd / f"job{self.jobs}.log"
        rc, out = self.run(f"{command} > {log} 2>&1 &")
        assert rc == 0, out
        return log

    def close(self):
        self.proc.stdin.write("kill $(jobs -p) 2>/dev/null; wait; exit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=30)


def install(command, cwd, env):
    """`cargo install --path . ...` as the README says, into `cwd`/cargo; returns its bin dir."""
    root = cwd / "cargo"
    run = subprocess.run(
        f"{command} --debug --root {root}", shell=True, cwd=ROOT, capture_output=True, text=True,
        env={**env, "CARGO_TARGET_DIR": str(ROOT / "target")},
    )
    assert run.returncode == 0, run.stderr
    assert (root / "bin" / "payhook").is_file(), run.stderr
    return root / "bin"


def run_block(number, body, cwd, env):
    shell = Shell(cwd, env)
    try:
        for command, promises in commands(body):
            where = f"README line {number}: {command}"
            if command.startswith("cargo install --path ."):
                env["PATH"] = f"{install(command, cwd, env)}:{env['PATH']}"
                shell.close()
                shell = Shell(cwd, env)
                continue
            background = re.fullmatch(r"(.*?)\s&\s*(#.*)?", command)
            if background:
                log = shell.start(background.group(1))
                deadline = time.monotonic() + 60
                printed = lambda: log.read_text() if log.exists() else ""  # noqa: E731
                while (missing := unkept(promises, printed())) is not None:
                    assert time.monotonic() < deadline, \
                        f"{where}: never printed {missing!r}:\n{printed()}"
                    time.sleep(0.1)
                if not promises:
                    time.sleep(1)
                continue
            deadline = time.monotonic() + RETRY_FOR
            while True:
                rc, out = shell.run(command)
                missing = unkept(promises, out) if rc == 0 else "exit status 0"
                if missing is None:
                    break
                assert is_read(command) and time.monotonic() < deadline, \
                    f"{where}: exit status {rc}, {missing!r} not printed:\n{out}"
                time.sleep(0.3)
    finally:
        shell.close()


def test_every_shell_block_of_the_readme_does_what_it_says(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PAYHOOK_", "STRIPE_"))},
        "RUST_LOG": "info",
    }
    for key in ("DATABASE_URL", "BOOKING_SERVICE_URL", "INTERNAL_SERVICE_TOKEN"):
        env.pop(key, None)
    run = [b for b in shell_blocks() if b[1] is None]
    assert len(run) >= 5, "the README's tour is run"
    for number, _, body in run:
        run_block(number, body, tmp_path, env)


def test_the_readme_starts_with_the_two_set_up_commands_and_stays_short():
    text = README.read_text()
    assert len(text.splitlines()) < 300
    first = shell_blocks()[0]
    assert [c for c, _ in commands(first[2])] == [
        "cargo run --release -- serve     # payhook on its embedded defaults: SQLite ./payhook.db, the sandbox provider",
        "scripts/test                     # the whole test suite; installs its own tools, starts its own PostgreSQL",
    ]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
    # Only these may go unrun: the set-up commands, and what needs a Stripe account.
    skipped = [c for _, why, body in shell_blocks() if why for c, _ in commands(body)]
    assert all(c.startswith(("cargo run --release -- serve ", "scripts/test ",
                             "STRIPE_WEBHOOK_SECRET=whsec_...")) for c in skipped), skipped
    # The tour installs payhook before it uses it bare.
    tour = [c for _, why, body in shell_blocks() if not why for c, _ in commands(body)]
    assert tour[0] == "cargo install --path . --locked", tour[0]


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere():
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}"
